#include "snaptool.h"
int cmd_pair(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return 1;
}
