/* LD_PRELOAD shim for benchmarks only: answers EPERM to arch_prctl(ARCH_REQ_XCOMP_PERM), so onnxruntime's MLAS finds
   AMX unavailable (MlasInitAMX) and keeps its AVX-512 VNNI kernels. onnxruntime 1.30 has no setting for this.
   Build: gcc -O2 -shared -fPIC -o /tmp/deny_amx.so scripts/bench/deny_amx.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/syscall.h>

#define ARCH_REQ_XCOMP_PERM 0x1023

long syscall(long number, ...) {
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
  va_end(ap);
  if (number == SYS_arch_prctl && a[0] == ARCH_REQ_XCOMP_PERM) {
    errno = EPERM;
    return -1;
  }
  static long (*real)(long, ...) = 0;
  if (!real) real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
  return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
