// libzip (Debian: libzip-dev).
#include <zip.h>
