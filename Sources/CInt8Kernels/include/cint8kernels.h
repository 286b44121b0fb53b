/* CInt8Kernels: placeholder until its issue lands. */
#pragma once
int cint8kernels_placeholder(void);
