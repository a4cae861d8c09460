#include "snaptool.h"
int cmd_repack(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return 1;
}
