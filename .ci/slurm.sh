#!/usr/bin/env bash
# Install and start a single-node Slurm (munged, slurmctld, slurmd) without systemd, for CI and the
# Slurm tests. Safe to run twice: a healthy cluster is left alone (well under a second); daemons that
# died are started again; a changed node description (CPUs, memory) rewrites slurm.conf and restarts.
# Ends with the node usable and `srun hostname` working, or exits 1 naming what did not start, with
# the tail of its log. Must run as root (it installs packages and starts daemons). Exit 3: Slurm is not
# installed and cannot be (no apt-get).
#
# Why each setting (measured on Debian 12, Slurm 22.05, see issue 14):
#   cred_expire=10       a requeued job is held cred_expire + 1 s before it may run again (default 120 s)
#   proctrack/linuxproc  tracks a job's processes through /proc parentage: no cgroups, no systemd
#   task/none            no CPU binding (nothing to bind to in a container)
#   ReturnToService=2    a node that went down (slurmd killed with the session) comes back by itself
#   JobRequeue=1         batch jobs may be requeued (the trainers requeue themselves on preemption)
#   SchedulerParameters  the main scheduler and backfill look often, so a released job starts in seconds
set -euo pipefail

CONF=/etc/slurm/slurm.conf
LOG_DIR=/var/log/slurm
STATE_DIR=/var/lib/slurm/slurmctld
SPOOL_DIR=/var/lib/slurm/slurmd
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
PARTITION=${SLURM_TEST_PARTITION:-baton}
# linuxproc finds a job's processes by parentage, so a process whose parent died (reparented to
# init) escapes it: after the batch shell is killed its children live on. cgroup (v1 freezer here)
# keeps them; opt in with SLURM_TEST_PROCTRACK=cgroup (needs /sys/fs/cgroup/freezer).
PROCTRACK=${SLURM_TEST_PROCTRACK:-linuxproc}
CGROUP_CONF=/etc/slurm/cgroup.conf

say() { echo "slurm.sh: $*" >&2; }
fail() {
  say "FAILED: $*"
  for log in /var/log/munge/munged.log "$LOG_DIR"/*.start.log "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log"; do
    if [[ -f $log ]]; then
      echo "----- last lines of $log -----" >&2
      tail -n 25 "$log" >&2
    fi
  done
  exit 1
}

# Alive = the pid file names a running process of that program (a stale pid file after the session
# that started the daemon ended must not count, nor a recycled pid).
alive() {
  local pidfile=$1 program=$2 pid
  [[ -r $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  local stat
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  # "pid (comm) state …": a killed daemon stays a zombie (Z) until pid 1 reaps it, which here can
  # take seconds; it must not count as running.
  [[ $stat =~ ^$pid\ \((.*)\)\ ([A-Za-z]) ]] || return 1
  [[ ${BASH_REMATCH[1]} == "$program" && ! ${BASH_REMATCH[2]} =~ [ZX] ]]
}

# Poll `check` (a command) every 0.2 s for up to $1 seconds.
wait_for() {
  local seconds=$1
  shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
ctld_ok() { alive "$CTLD_PID" slurmctld && scontrol ping 2>/dev/null | grep -q "is UP"; }
slurmd_ok() { alive "$SLURMD_PID" slurmd && scontrol show slurmd >/dev/null 2>&1; }
node_state() { sinfo -h -N -n "$(hostname -s)" -o %T 2>/dev/null | head -n 1; }
# Usable = the node takes jobs (idle, or running some already); not down, drained or still booting.
node_usable() { [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]; }

if [[ $(id -u) -ne 0 ]]; then
  say "FAILED: must run as root (it installs slurmctld, slurmd, slurm-client, munge and starts them)"
  exit 1
fi

# One run at a time: test files running side by side may all find the cluster down at once.
# Every daemon this script starts gets `9>&-`: a daemon that inherited the locked descriptor would
# hold the lock for its whole life, and every later run of this script would wait for it.
mkdir -p /run/lock
exec 9>/run/lock/baton-slurm.lock
flock -w 300 9 || fail "another .ci/slurm.sh has held /run/lock/baton-slurm.lock for 5 minutes ($(fuser /run/lock/baton-slurm.lock 2>&1 | tr -s ' '))"

# ---- install ----------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null ||
  ! command -v munged >/dev/null; then
  if ! command -v apt-get >/dev/null; then
    # Exit 3, not 1: the tests take this (and only this, besides not being root) as a reason to skip.
    say "FAILED: Slurm is not installed and there is no apt-get to install it (slurmctld slurmd slurm-client munge)"
    exit 3
  fi
  say "installing slurmctld slurmd slurm-client munge"
  apt_install() {
    # Another apt user (a parallel job) holds the lock for a while: wait for it rather than fail.
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends \
      slurmctld slurmd slurm-client munge
  }
  if ! apt_install >/tmp/slurm-apt.log 2>&1; then
    apt-get -o DPkg::Lock::Timeout=300 update -q >>/tmp/slurm-apt.log 2>&1 || true
    apt_install >>/tmp/slurm-apt.log 2>&1 || {
      tail -n 20 /tmp/slurm-apt.log >&2
      fail "apt-get install slurmctld slurmd slurm-client munge (log: /tmp/slurm-apt.log)"
    }
  fi
fi

# ---- configuration ----------------------------------------------------------------------------
host=$(hostname -s)
# First line only: `slurmd -C` also prints UpTime=…, which is not a node parameter.
node_line=$(slurmd -C 2>/dev/null | head -n 1)
[[ $node_line == NodeName=* ]] || fail "slurmd -C did not describe this node (got: ${node_line:-nothing})"
node_line=${node_line/NodeName=* CPUs/NodeName=$host CPUs}

wanted=$(
  cat <<EOF
# Written by .ci/slurm.sh: a single-node test cluster. Rewritten when this node changes.
ClusterName=baton
SlurmctldHost=$host
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
AuthInfo=cred_expire=10
CredType=cred/munge
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/$PROCTRACK
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobRequeue=1
ReturnToService=2
MinJobAge=300
KillWait=30
SlurmdTimeout=60
SlurmctldTimeout=60
$node_line State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
)

case $PROCTRACK in
  linuxproc) wanted_cgroup="" ;;
  cgroup)
    [[ -d /sys/fs/cgroup/freezer ]] || fail "SLURM_TEST_PROCTRACK=cgroup: no cgroup v1 freezer at /sys/fs/cgroup/freezer"
    wanted_cgroup=$'CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\nCgroupAutomount=no\nConstrainCores=no\nConstrainRAMSpace=no'
    ;;
  *) fail "SLURM_TEST_PROCTRACK=$PROCTRACK: expected linuxproc or cgroup" ;;
esac

restart=0
if [[ -n $wanted_cgroup ]] && { [[ ! -f $CGROUP_CONF ]] || [[ $(<"$CGROUP_CONF") != "$wanted_cgroup" ]]; }; then
  say "writing $CGROUP_CONF"
  printf '%s\n' "$wanted_cgroup" >"$CGROUP_CONF.tmp"
  mv "$CGROUP_CONF.tmp" "$CGROUP_CONF"
  restart=1
fi
if [[ ! -f $CONF ]] || [[ $(<"$CONF") != "$wanted" ]]; then
  say "writing $CONF"
  mkdir -p "$(dirname "$CONF")"
  printf '%s\n' "$wanted" >"$CONF.tmp"
  mv "$CONF.tmp" "$CONF"
  restart=1
fi
mkdir -p "$LOG_DIR" "$STATE_DIR" "$SPOOL_DIR"

# ---- munge ------------------------------------------------------------------------------------
if ! alive "$MUNGE_PID" munged || ! munge_ok; then
  say "starting munged"
  if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --force >/dev/null 2>&1 || fail "mungekey --create (no /etc/munge/munge.key)"
  fi
  chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  # A munged killed with its session leaves its socket and pid file; --force takes them over.
  runuser -u munge -- /usr/sbin/munged --force >"$LOG_DIR/munged.start.log" 2>&1 9>&- || fail "munged did not start"
  wait_for 10 munge_ok || fail "munged is not answering (munge -n | unmunge)"
fi

# ---- daemons ----------------------------------------------------------------------------------
stop_daemon() {
  local pidfile=$1 program=$2
  if alive "$pidfile" "$program"; then
    local pid
    pid=$(<"$pidfile")
    kill "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while alive "$pidfile" "$program" && ((SECONDS < deadline)); do sleep 0.2; done
    if alive "$pidfile" "$program"; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
}
if ((restart)); then
  stop_daemon "$SLURMD_PID" slurmd
  stop_daemon "$CTLD_PID" slurmctld
fi

if ! alive "$CTLD_PID" slurmctld; then
  say "starting slurmctld"
  # -i: ignore a state file it cannot read (written by another version) instead of refusing to start.
  # What a daemon says before its log file is open (a bad slurm.conf) goes to its .start.log.
  slurmctld -i >"$LOG_DIR/slurmctld.start.log" 2>&1 9>&- || fail "slurmctld did not start"
fi
wait_for 20 ctld_ok || fail "slurmctld is not answering (scontrol ping)"

if ! slurmd_ok; then
  # Alive but not answering (hung, or its port taken): start afresh.
  stop_daemon "$SLURMD_PID" slurmd
  say "starting slurmd"
  slurmd >"$LOG_DIR/slurmd.start.log" 2>&1 9>&- || fail "slurmd did not start"
  wait_for 20 slurmd_ok || fail "slurmd is not answering (scontrol show slurmd)"
fi

# ---- the node ---------------------------------------------------------------------------------
if ! wait_for 30 node_usable; then
  state=$(node_state)
  # Down or drained with a reason a restart leaves behind ("Not responding", "Node unexpectedly
  # rebooted"): the daemons are up, so tell slurmctld the node is back.
  if [[ $state =~ (down|drain|fail) ]]; then
    say "node $host is ${state}: resuming it"
    scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
  fi
  wait_for 30 node_usable ||
    fail "node $host is $(node_state) (not idle): $(sinfo -h -N -n "$host" -o '%T %E' 2>&1 | head -n 1)"
fi

# A slurmctld killed without saving its state may bring back an earlier check as RUNNING: a ghost
# holding a CPU until its 1-minute limit. No check is running now (this script holds the lock).
scancel --name=baton-slurm-check >/dev/null 2>&1 || true
# A job really runs (only when the node is free: a busy node would make srun wait for it).
if [[ $(node_state) == idle ]]; then
  # srun's notes ("job 45 queued and waiting for resources") go to stderr, the answer to stdout.
  out=$(timeout 60 srun --immediate=30 --partition="$PARTITION" --time=1 --job-name=baton-slurm-check hostname 2>/tmp/slurm-srun.err 9>&-) ||
    fail "srun hostname failed: $(tr '\n' ' ' </tmp/slurm-srun.err)"
  [[ $out == "$host" ]] || fail "srun hostname printed '$out', expected '$host'"
fi
say "cluster up: partition $PARTITION, node $host $(node_state)"
