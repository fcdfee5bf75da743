// Command mount is a static mount(8)/umount(8) for the csi-driver image
// (installed as /bin/mount, with /bin/umount a link to it). csi-lib mounts
// through k8s.io/mount-utils, which execs these two commands; upstream's
// image base (base-static-csi) carries util-linux's, which are dynamically
// linked. It understands what mount-utils passes:
//
//	mount [-t fstype] [-o opt[,opt...]] [source] target
//	umount [-f] [-l] target
//
// Options map to mount(2) flags (bind, rbind, remount, ro, rw, nodev,
// nosuid, noexec, noatime, relatime, nodiratime, strictatime, sync,
// dirsync, the propagation types); any other option (size=, mode=, ...) is
// passed to the file system as data. "bind" with further flags and no
// "remount" is done as util-linux does it: bind, then remount with the
// flags. umount of something not mounted says "not mounted" (exit 32),
// which mount-utils recognises as safe.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	var err error
	if filepath.Base(os.Args[0]) == "umount" {
		err = umount(os.Args[1:])
	} else {
		err = mount(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		var ec exitCode
		if errors.As(err, &ec) {
			os.Exit(ec.code)
		}
		os.Exit(1)
	}
}

type exitCode struct {
	code int
	msg  string
}

func (e exitCode) Error() string { return e.msg }

// request is one parsed mount command line.
type request struct {
	fstype, source, target string
	flags                  uintptr // MS_* without propagation
	propagation            uintptr // MS_PRIVATE, MS_SHARED, ... (| MS_REC)
	data                   []string
}

var flagOptions = map[string]uintptr{
	"bind": unix.MS_BIND, "rbind": unix.MS_BIND | unix.MS_REC, "remount": unix.MS_REMOUNT,
	"ro": unix.MS_RDONLY, "nodev": unix.MS_NODEV, "nosuid": unix.MS_NOSUID, "noexec": unix.MS_NOEXEC,
	"noatime": unix.MS_NOATIME, "relatime": unix.MS_RELATIME, "nodiratime": unix.MS_NODIRATIME,
	"strictatime": unix.MS_STRICTATIME, "sync": unix.MS_SYNCHRONOUS, "dirsync": unix.MS_DIRSYNC,
}

// clearOptions undo a flag: "rw" clears "ro" and so on.
var clearOptions = map[string]uintptr{
	"rw": unix.MS_RDONLY, "dev": unix.MS_NODEV, "suid": unix.MS_NOSUID, "exec": unix.MS_NOEXEC,
	"atime": unix.MS_NOATIME, "async": unix.MS_SYNCHRONOUS,
}

var propagationOptions = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

func parseMount(args []string) (request, error) {
	var r request
	var opts []string
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("mount: option %s needs a value", a)
			}
			i++
			return args[i], nil
		}
		switch {
		case a == "-t" || a == "--types":
			v, err := next()
			if err != nil {
				return r, err
			}
			r.fstype = v
		case strings.HasPrefix(a, "-t") && len(a) > 2:
			r.fstype = a[2:]
		case a == "-o" || a == "--options":
			v, err := next()
			if err != nil {
				return r, err
			}
			opts = append(opts, strings.Split(v, ",")...)
		case strings.HasPrefix(a, "-o") && len(a) > 2:
			opts = append(opts, strings.Split(a[2:], ",")...)
		case a == "--bind" || a == "-B":
			opts = append(opts, "bind")
		case a == "--rbind" || a == "-R":
			opts = append(opts, "rbind")
		case a == "-r" || a == "--read-only":
			opts = append(opts, "ro")
		case a == "-w" || a == "--rw" || a == "--read-write":
			opts = append(opts, "rw")
		case a == "--make-private", a == "--make-rprivate", a == "--make-shared", a == "--make-rshared",
			a == "--make-slave", a == "--make-rslave":
			opts = append(opts, strings.TrimPrefix(a, "--make-"))
		case a == "-n" || a == "--no-mtab" || a == "-v" || a == "--verbose":
		case strings.HasPrefix(a, "-") && a != "-":
			return r, fmt.Errorf("mount: unsupported option %s", a)
		default:
			pos = append(pos, a)
		}
	}
	switch len(pos) {
	case 1:
		r.target = pos[0]
	case 2:
		r.source, r.target = pos[0], pos[1]
	default:
		return r, fmt.Errorf("mount: want [source] target, got %q", pos)
	}
	for _, o := range opts {
		switch {
		case o == "" || o == "defaults":
		case flagOptions[o] != 0:
			r.flags |= flagOptions[o]
		case clearOptions[o] != 0:
			r.flags &^= clearOptions[o]
		case propagationOptions[o] != 0:
			r.propagation |= propagationOptions[o]
		default:
			r.data = append(r.data, o)
		}
	}
	if r.fstype == "" && r.flags&(unix.MS_BIND|unix.MS_REMOUNT) == 0 && r.propagation == 0 {
		return r, errors.New("mount: no file system type (-t) and not a bind, remount or propagation change")
	}
	if r.source == "" {
		r.source = r.fstype
		if r.source == "" {
			r.source = "none"
		}
	}
	return r, nil
}

// calls returns the mount(2) calls that carry out r, in order.
type call struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

func (r request) calls() []call {
	var cs []call
	data := strings.Join(r.data, ",")
	switch {
	case r.flags&unix.MS_BIND != 0 && r.flags&unix.MS_REMOUNT == 0:
		// The kernel ignores every other flag on a new bind mount: bind
		// first, then remount with them (util-linux does the same).
		cs = append(cs, call{r.source, r.target, "", r.flags & (unix.MS_BIND | unix.MS_REC), ""})
		if extra := r.flags &^ (unix.MS_BIND | unix.MS_REC); extra != 0 {
			cs = append(cs, call{"", r.target, "", unix.MS_BIND | unix.MS_REMOUNT | extra, ""})
		}
	case r.flags != 0 || r.fstype != "" || data != "":
		cs = append(cs, call{r.source, r.target, r.fstype, r.flags, data})
	}
	if r.propagation != 0 {
		cs = append(cs, call{"", r.target, "", r.propagation, ""})
	}
	return cs
}

func mount(args []string) error {
	if len(args) == 0 {
		data, err := os.ReadFile("/proc/self/mounts")
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(data)
		return err
	}
	r, err := parseMount(args)
	if err != nil {
		return exitCode{1, err.Error()}
	}
	for _, c := range r.calls() {
		if err := unix.Mount(c.source, c.target, c.fstype, c.flags, c.data); err != nil {
			return exitCode{32, fmt.Sprintf("mount: %s: mount(%q, %q, flags %#x, %q): %v", r.target, c.source, c.fstype, c.flags, c.data, err)}
		}
	}
	return nil
}

func umount(args []string) error {
	var flags int
	var targets []string
	for _, a := range args {
		switch a {
		case "-f", "--force":
			flags |= unix.MNT_FORCE
		case "-l", "--lazy":
			flags |= unix.MNT_DETACH
		case "-n", "--no-mtab", "-v", "--verbose":
		default:
			if strings.HasPrefix(a, "-") {
				return exitCode{1, "umount: unsupported option " + a}
			}
			targets = append(targets, a)
		}
	}
	if len(targets) == 0 {
		return exitCode{1, "umount: no target given"}
	}
	for _, t := range targets {
		err := unix.Unmount(t, flags)
		switch {
		case err == nil:
		case errors.Is(err, unix.EINVAL):
			// util-linux' wording, which mount-utils looks for.
			return exitCode{32, fmt.Sprintf("umount: %s: not mounted.", t)}
		case errors.Is(err, unix.ENOENT):
			return exitCode{32, fmt.Sprintf("umount: %s: no mount point specified.", t)}
		default:
			return exitCode{32, fmt.Sprintf("umount: %s: %v", t, err)}
		}
	}
	return nil
}
