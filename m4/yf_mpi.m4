# YF_MPI: data-parallel training over MPI (Debian's Open MPI).
#   --with-mpi         required (configure fails without it)
#   --without-mpi      never
#   (default: check)   used when found
# Looks for Open MPI's pkg-config module ompi-c (libopenmpi-dev), then for
# mpicc's own flags; substitutes MPI_CFLAGS and MPI_LIBS, defines HAVE_MPI
# and the Automake conditional HAVE_MPI.
AC_DEFUN([YF_MPI],
[AC_ARG_WITH([mpi],
  [AS_HELP_STRING([--with-mpi],
    [train in data parallel over MPI (Open MPI: apt-get install libopenmpi-dev openmpi-bin); default: when found])],
  [], [with_mpi=check])
yf_have_mpi=no
AS_IF([test "x$with_mpi" != xno],
  [PKG_CHECK_MODULES([MPI], [ompi-c], [yf_have_mpi=yes],
     [AC_PATH_PROG([MPICC], [mpicc])
      AS_IF([test -n "$MPICC"],
        [MPI_CFLAGS=`$MPICC --showme:compile 2>/dev/null`
         MPI_LIBS=`$MPICC --showme:link 2>/dev/null`
         AS_IF([test -n "$MPI_LIBS"], [yf_have_mpi=yes])])])
   AS_IF([test "x$yf_have_mpi" = xyes],
     [yf_save_CFLAGS=$CFLAGS yf_save_LIBS=$LIBS
      CFLAGS="$CFLAGS $MPI_CFLAGS" LIBS="$MPI_LIBS $LIBS"
      AC_MSG_CHECKING([whether a program calling MPI_Init_thread links])
      AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <mpi.h>]],
                                      [[int p; return MPI_Init_thread(0, 0, MPI_THREAD_FUNNELED, &p);]])],
        [AC_MSG_RESULT([yes])], [AC_MSG_RESULT([no]); yf_have_mpi=no])
      CFLAGS=$yf_save_CFLAGS LIBS=$yf_save_LIBS])
   AS_IF([test "x$yf_have_mpi" != xyes && test "x$with_mpi" = xyes],
     [AC_MSG_ERROR([--with-mpi: no usable Open MPI found; install it with: apt-get install libopenmpi-dev openmpi-bin])])])
AS_IF([test "x$yf_have_mpi" = xyes],
  [AC_DEFINE([HAVE_MPI], [1], [Define to 1 to train in data parallel over MPI.])],
  [MPI_CFLAGS= MPI_LIBS=])
AC_SUBST([MPI_CFLAGS])
AC_SUBST([MPI_LIBS])
AM_CONDITIONAL([HAVE_MPI], [test "x$yf_have_mpi" = xyes])
])
