// wrapper.go holds the small POSIX sh program that a plan sends over ssh
// around the remote command, so that cancelling a run stops the command on
// the host and not only the local ssh.
//
// Without a terminal, killing ssh closes the connection and nothing more:
// sshd signals nothing, and the command goes on running on the host. With
// a terminal (ssh -tt) the host's kernel would hang it up, but stdout and
// stderr would be merged into one stream. The wrapper keeps them apart:
//
//  1. It starts the command (the plan's Command, read by /bin/sh) in the
//     background, in a new session and so a process group of its own
//     (setsid, where installed, as on every Linux), with its standard
//     input from /dev/null: the tool never reads the caller's input.
//  2. A watchdog waits for end-of-file on the wrapper's standard input:
//     the pipe that Runner.Run owns and never writes to. It comes when Run
//     closes the pipe on cancellation, and also when the connection dies.
//  3. The watchdog then sends SIGTERM to every process descended from
//     the command (found with ps, which also finds those that left the
//     command's group, as su's child does) and to their process groups,
//     waits up to about 5 seconds for them to exit, then sends SIGKILL
//     to those groups. It kills groups rather than pids at the end
//     because a group that still has a member keeps its id, while the
//     pid of a process that has exited may already be another's.
//  4. When the command exits by itself, the wrapper stops the watchdog and
//     exits with the command's status.
//
// The command's group is not the wrapper's: sudo does not relay a signal
// sent from its own process group, and it must relay SIGTERM to a command
// that runs as another user, which the SSH user may not signal itself.
// What the SSH user may not signal is out of the wrapper's reach: when it
// is not root, sudo and su relay SIGTERM to the command they run, but that
// command's own children, if it leaves them behind, and a command that
// ignores SIGTERM keep running (a SIGKILL to sudo cannot be relayed).
//
// The wrapper is sent as `/bin/sh -c WRAPPER runspec COMMAND`, every part
// quoted by internal/shell: the remote login shell starts /bin/sh, which
// gets the command line as $1, byte for byte.

package run

import "github.com/runspec/registry/internal/shell"

// wrapperScript is the wrapper: one line of sh, without a single quote so
// that its quoted form stays readable. Pieces are one statement each.
const wrapperScript = `exec 3<&0 </dev/null; ` +
	`g=; command -v setsid >/dev/null 2>&1 && g=setsid; ` +
	`$g /bin/sh -c "$1" 3<&- & c=$!; ` +
	`{ ` +
	`while read -r _; do :; done <&3; ` + // end of input: cancelled, or the connection died
	`trap "" TERM; ` + // finish even if the wrapper, done waiting, tries to stop us
	`l=" $c "; a=1; ` +
	`while [ $a = 1 ]; do a=0; ` + // the command's descendants, until no new one appears
	`for x in $(ps -A -o pid= -o ppid= 2>/dev/null | while read -r p q; do ` +
	`case $l in (*" $q "*) case $l in (*" $p "*) ;; (*) echo $p;; esac;; esac; done); do ` +
	`l="$l$x "; a=1; done; ` +
	`done; ` +
	`k=-$c; ` + // the process groups they are in
	`for x in $(ps -A -o pid= -o pgid= 2>/dev/null | while read -r p q; do ` +
	`case $l in (*" $p "*) echo $q;; esac; done); do ` +
	`case " $k " in (*" -$x "*) ;; (*) k="$k -$x";; esac; done; ` +
	`kill -s TERM -- $k $l 2>/dev/null; ` +
	`i=0; while [ $i -lt 25 ]; do ` + // about 5 s for them to exit
	`n=; for p in $l; do kill -0 $p 2>/dev/null && n=1; done; ` +
	`[ -z "$n" ] && exit 0; ` +
	`sleep 0.2 2>/dev/null || sleep 1; i=$((i+1)); ` +
	`done; ` +
	`kill -s KILL -- $k 2>/dev/null; ` + // groups, not pids: a group in use keeps its id
	`} >/dev/null 2>&1 & w=$!; ` +
	`exec 3<&-; ` +
	`wait $c; s=$?; ` +
	`kill $w 2>/dev/null; ` +
	`exit $s`

// wrap returns the remote command line that runs command under the
// wrapper.
func wrap(command string) string {
	return shell.Join([]string{"/bin/sh", "-c", wrapperScript, "runspec", command})
}
