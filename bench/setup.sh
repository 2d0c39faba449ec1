# setup.sh -- sourced by the benchmarks: fetches MNIST into $YAFLOW_DATA
# (default ./data, exported as an absolute path in data_dir and YAFLOW_DATA)
# and installs what the PyTorch peers need (python3-torch python3-numpy
# libopenblas0-pthread) with apt when missing. Expects $root, say and die.
# Defines, for the scripts that time two threads or ranks: median (of its
# arguments, the lower of the two middle ones), lat (the cores' cache-line
# round trip in ns, bench/corelat or CORELAT; "?" without it) and together
# (whether both round trips given are under 200 ns: the two virtual CPUs
# were together before and after a run).
data_dir=${YAFLOW_DATA:-./data}
mkdir -p "$data_dir"
data_dir=$(cd "$data_dir" && pwd)
export YAFLOW_DATA=$data_dir
"$root/scripts/fetch-mnist.sh" "$data_dir" >/dev/null

# ------------------------------------------------------------ dependencies
need=(python3-torch python3-numpy libopenblas0-pthread)
missing=()
for p in "${need[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "bench: the reference needs ${missing[*]}: installing them with apt-get"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install ${missing[*]}"
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y "${missing[@]}"
fi


# ------------------------------------------------------------ helpers
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
corelat=${CORELAT:-$root/bench/corelat}
lat() { if [ -x "$corelat" ]; then "$corelat" 2> /dev/null || echo "?"; else echo "?"; fi; }
together() { case "$1$2" in ''|*[!0-9]*) return 1 ;; esac; [ "$1" -lt 200 ] && [ "$2" -lt 200 ]; }
