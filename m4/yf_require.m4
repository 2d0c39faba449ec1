# yf_require.m4 -- yaflow's checks for required libraries.      -*- Autoconf -*-
#
# Every missing dependency stops configure with one message that names the
# Debian package to install, e.g.
#   yaflow needs libyaml: install the Debian package libyaml-dev
#   (apt-get install libyaml-dev)

# YF_REQUIRE_FAIL(WHAT, DEBIAN-PACKAGE)
# -------------------------------------
AC_DEFUN([YF_REQUIRE_FAIL],
[AC_MSG_ERROR([yaflow needs $1: install the Debian package $2 (apt-get install $2)])])

# YF_REQUIRE_LIB(LIB, HEADER, FUNCTION, DEBIAN-PACKAGE, [OTHER-LIBS])
# -------------------------------------------------------------------
# Require header HEADER and a library -lLIB that defines FUNCTION (linked
# together with OTHER-LIBS, if given).  Substitutes <LIB>_CFLAGS (empty unless
# the user set it) and <LIB>_LIBS (-lLIB, unless the user set it), where <LIB>
# is LIB in upper case: YAML_LIBS, BLIS_LIBS, Z_LIBS, M_LIBS...
# The user's <LIB>_CFLAGS / <LIB>_LIBS are honoured and are what is tested, so
# a BLIS installed elsewhere can be used with
#   ./configure BLIS_CFLAGS=-I/opt/blis/include BLIS_LIBS="-L/opt/blis/lib -lblis"
AC_DEFUN([YF_REQUIRE_LIB],
[m4_pushdef([yf_VAR], m4_toupper(m4_translit([$1], [-.], [__])))dnl
AC_ARG_VAR(yf_VAR[_CFLAGS], [C compiler flags for lib$1, overriding the default])dnl
AC_ARG_VAR(yf_VAR[_LIBS], [linker flags for lib$1, overriding -l$1])dnl
AS_IF([test "x${yf_VAR[]_LIBS+set}" != xset], [yf_VAR[]_LIBS="-l$1"])
yf_save_CPPFLAGS=$CPPFLAGS
yf_save_LIBS=$LIBS
CPPFLAGS="$CPPFLAGS $yf_VAR[]_CFLAGS"
LIBS="$yf_VAR[]_LIBS $5 $LIBS"
AC_CHECK_HEADER([$2], [], [YF_REQUIRE_FAIL([lib$1 (header <$2> not found)], [$4])])
AC_CACHE_CHECK([for $3 in $yf_VAR[]_LIBS], [yf_cv_lib_$1_$3],
  [AC_LINK_IFELSE([AC_LANG_CALL([], [$3])],
    [AS_VAR_SET([yf_cv_lib_$1_$3], [yes])],
    [AS_VAR_SET([yf_cv_lib_$1_$3], [no])])])
AS_IF([test "x$yf_cv_lib_$1_$3" != xyes],
  [YF_REQUIRE_FAIL([lib$1 ($3 not found with $yf_VAR[]_LIBS)], [$4])])
CPPFLAGS=$yf_save_CPPFLAGS
LIBS=$yf_save_LIBS
AC_SUBST(yf_VAR[_CFLAGS])dnl
AC_SUBST(yf_VAR[_LIBS])dnl
m4_popdef([yf_VAR])dnl
])

# YF_REQUIRE_PKG(VAR, PKG-CONFIG-MODULES, DEBIAN-PACKAGE, [WHAT],
#                [FALLBACK-LIB, FALLBACK-HEADER, FALLBACK-FUNCTION])
# -----------------------------------------------------------------
# Require MODULES through pkg-config; substitutes VAR_CFLAGS and VAR_LIBS.
# With FALLBACK-* given, a system without the .pc file (or without pkg-config)
# is checked with YF_REQUIRE_LIB instead, whose <LIB> must then equal VAR.
# Sets yf_found_VAR to "pkg-config" or "lib".
AC_DEFUN([YF_REQUIRE_PKG],
[PKG_CHECK_MODULES([$1], [$2],
  [yf_found_$1=pkg-config],
  [m4_ifval([$5],
     [AC_MSG_NOTICE([pkg-config cannot find $2; trying -l$5])
      YF_REQUIRE_LIB([$5], [$6], [$7], [$3])
      yf_found_$1=lib],
     [YF_REQUIRE_FAIL(m4_default([$4], [$2]), [$3])])])
])
