#include "cfloatkernels.h"
int cfloatkernels_placeholder(void) { return 0; }
