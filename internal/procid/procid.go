// Package procid identifies host processes the harness started, so that it
// only ever signals its own: a PID alone may be reused by another process
// after the first one exited, a PID with its start time may not.
package procid

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Stat returns the start time of process pid (field 22 of /proc/<pid>/stat,
// in clock ticks since boot) and whether it is a zombie (exited, waiting to
// be reaped). An error means there is no such process (or /proc is not
// readable).
func Stat(pid int) (startTicks uint64, zombie bool, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false, err
	}
	// The command name (field 2) is in parentheses and may hold spaces and
	// parentheses: the fields after it start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 20 {
		return 0, false, fmt.Errorf("short /proc/%d/stat", pid)
	}
	startTicks, err = strconv.ParseUint(f[19], 10, 64)
	return startTicks, f[0] == "Z", err
}

// StartTicks is Stat's start time, 0 when there is no such process.
func StartTicks(pid int) uint64 {
	t, _, err := Stat(pid)
	if err != nil {
		return 0
	}
	return t
}

// Running reports whether pid is still the process that started at
// startTicks and has not exited.
func Running(pid int, startTicks uint64) bool {
	t, zombie, err := Stat(pid)
	return err == nil && t == startTicks && !zombie
}
