#!/usr/bin/env bash
# adsync's Redis users (README "Secrets"): deploy/redis-users.acl holds one
# user per role, each allowed only the commands and keys it uses. Lua
# scripts run with their caller's permissions, so the commands inside
# adsync's scripts are listed too; keys assume ADSYNC_PREFIX=adsync.
#
#   adsync-worker      BLMOVE, its reads and writes, every command of its scripts
#   adsync-enqueue     clients, runs, status, dead letters, secrets rotate/migrate
#   adsync-autoscaler  LLEN of adsync:jobs, nothing else (KEDA)
#   adsync-inspector   reads every adsync key, writes none, no KEYS (use --scan)
#   adsync-console     the web console: queues, runs, dead letters, "sync now";
#                      no access at all to the client hashes or their tokens
#   default            off: every client must say who it is
#
# The file has no passwords, so nobody can log in with it as it is (and
# redis-server reads no comments in ACL files). This script writes
# DIR/redis-users.acl, the same rules with a fresh random password per user,
# and DIR/redis-passwords ("user password" lines, mode 0600) to build each
# program's REDIS_URL=redis://adsync-worker:PASSWORD@host:6379/0. On a
# running server, ACL SETUSER adsync-worker >PASSWORD then ACL SAVE does the
# same for one user.
#
# With HOST:PORT it also writes DIR/<user>.env, one REDIS_URL line each, for
# the compose file's env_file and systemd's EnvironmentFile (worker.env,
# enqueue.env in /etc/adsync).
#
#   deploy/redis-users.sh DIR [HOST:PORT]   (used by deploy/run-local.sh and the tests)
set -euo pipefail
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: deploy/redis-users.sh DIR [HOST:PORT]" >&2; exit 64; }
dir=$1 hostport=${2:-}
rules="$(dirname "$0")/redis-users.acl"
mkdir -p "$dir"
umask 077
: > "$dir/redis-passwords"
while IFS= read -r line; do
  case "$line" in
    "user adsync-"*)
      name=${line#user }
      name=${name%% *}
      pw=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
      printf '%s >%s\n' "$line" "$pw"
      printf '%s %s\n' "$name" "$pw" >> "$dir/redis-passwords"
      [ -z "$hostport" ] || printf 'REDIS_URL=redis://%s:%s@%s/0\n' "$name" "$pw" "$hostport" > "$dir/$name.env" ;;
    *) printf '%s\n' "$line" ;;
  esac
done < "$rules" > "$dir/redis-users.acl"
