// glibc's allocator controls (mallopt), which Swift's Glibc module does not include; see
// Sources/GPT2/AllocatorTuning.swift.
#include <malloc.h>
