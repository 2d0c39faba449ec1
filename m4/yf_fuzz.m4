# yf_fuzz.m4 -- can this machine build make fuzz's targets?   -*- Autoconf -*-
#
# YF_FUZZ
# -------
# The libFuzzer targets of fuzz/ are built with clang (-fsanitize=fuzzer,
# address, undefined), whatever CC is.  Finds FUZZ_CC (the user's, else
# clang or clang-14) and checks that it links a fuzz target, and one using
# OpenMP (the library's kernels do).  Never fails: make fuzz says what is
# missing.  Substitutes FUZZ_CC, FUZZ_CFLAGS, FUZZ_LDFLAGS and FUZZ_MISSING
# (empty when make fuzz can run, else what to install).
AC_DEFUN([YF_FUZZ],
[AC_ARG_VAR([FUZZ_CC], [clang, for the libFuzzer targets of make fuzz (default: clang)])dnl
AS_IF([test -z "$FUZZ_CC"], [AC_CHECK_PROGS([FUZZ_CC], [clang clang-14], [])])
FUZZ_CFLAGS="-g -O1 -fno-omit-frame-pointer -fopenmp -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
FUZZ_LDFLAGS="-fopenmp -fsanitize=fuzzer,address,undefined"
FUZZ_MISSING=
AS_IF([test -z "$FUZZ_CC"],
  [FUZZ_MISSING="no clang: apt-get install clang libclang-rt-14-dev libomp-dev, then ./configure again"],
  [AC_CACHE_CHECK([whether $FUZZ_CC links libFuzzer targets], [yf_cv_fuzz_libfuzzer],
    [cat > conftest-fuzz.c <<'_YF_EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return (int)(size & 0) + (data ? 0 : 0); }
_YF_EOF
     AS_IF([$FUZZ_CC -fsanitize=fuzzer,address,undefined conftest-fuzz.c -o conftest-fuzz$EXEEXT >&AS_MESSAGE_LOG_FD 2>&1],
       [yf_cv_fuzz_libfuzzer=yes], [yf_cv_fuzz_libfuzzer=no])
     rm -f conftest-fuzz.c conftest-fuzz$EXEEXT])
   AS_IF([test "x$yf_cv_fuzz_libfuzzer" != xyes],
     [FUZZ_MISSING="$FUZZ_CC cannot link -fsanitize=fuzzer: apt-get install libclang-rt-14-dev, then ./configure again"],
     [AC_CACHE_CHECK([whether $FUZZ_CC has OpenMP], [yf_cv_fuzz_openmp],
       [cat > conftest-fuzz.c <<'_YF_EOF'
#include <omp.h>
int main(void) { int n = 0;
#pragma omp parallel reduction(+ : n)
  n += omp_get_num_threads() > 0;
  return n > 0 ? 0 : 1; }
_YF_EOF
        AS_IF([$FUZZ_CC -fopenmp conftest-fuzz.c -o conftest-fuzz$EXEEXT >&AS_MESSAGE_LOG_FD 2>&1],
          [yf_cv_fuzz_openmp=yes], [yf_cv_fuzz_openmp=no])
        rm -f conftest-fuzz.c conftest-fuzz$EXEEXT])
      AS_IF([test "x$yf_cv_fuzz_openmp" != xyes],
        [FUZZ_MISSING="$FUZZ_CC has no OpenMP: apt-get install libomp-dev, then ./configure again"])])])
AC_SUBST([FUZZ_CFLAGS])dnl
AC_SUBST([FUZZ_LDFLAGS])dnl
AC_SUBST([FUZZ_MISSING])dnl
])
