# proc.sh - shell functions the benchmark scripts share (sourced, not run).

# requests_of ARGS...: the value of redis-benchmark's -n among ARGS
# (empty if there is none).
requests_of() { printf '%s\n' "$@" | grep -A1 -x -- -n | tail -1; }

# cpu_ticks PID: the process's user and system time so far, in clock
# ticks (/proc/PID/stat; getconf CLK_TCK ticks a second).
cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
