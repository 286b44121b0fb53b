/* CFloatKernels: placeholder until its issue lands. */
#pragma once
int cfloatkernels_placeholder(void);
