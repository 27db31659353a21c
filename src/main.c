#include <stdio.h>
#include "core/status.h"
int main(void) { printf("dd2\n"); return 0; }
