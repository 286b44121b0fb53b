#include "cint8kernels.h"
int cint8kernels_placeholder(void) { return 0; }
