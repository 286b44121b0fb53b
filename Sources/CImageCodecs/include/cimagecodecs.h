/* CImageCodecs: placeholder until its issue lands. */
#pragma once
int cimagecodecs_placeholder(void);
