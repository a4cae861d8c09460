#include "snaptool.h"
int cmd_extract(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return 1;
}
