// Command probe is the tool image of internal/cluster's tests, a static
// binary on an empty base:
//
//	probe serve ADDR      answer every HTTP request with "hello from <hostname>"
//	probe get URL         print the body of GET URL (exit 1 on failure)
//	probe lookup NAME     print NAME's addresses (exit 1 on failure)
//	probe pause           sleep until SIGTERM or SIGINT (a sandbox image)
//	probe check STEP ARG...  run "get URL" and "lookup NAME" steps, one
//	                         result line each, never failing
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe serve|get|lookup|pause|check ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		host, _ := os.Hostname()
		err := http.ListenAndServe(os.Args[2], http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "hello from %s\n", host)
		}))
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	case "pause":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
	case "get", "lookup":
		out, err := step(os.Args[1], os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Print(out)
	case "check":
		// check get URL lookup NAME ...: one line per step,
		// "OK <step> <arg>: <result>" or "FAIL <step> <arg>: <error>".
		args := os.Args[2:]
		for i := 0; i+1 < len(args); i += 2 {
			out, err := step(args[i], args[i+1])
			if err != nil {
				fmt.Printf("FAIL %s %s: %v\n", args[i], args[i+1], err)
			} else {
				fmt.Printf("OK %s %s: %s\n", args[i], args[i+1], strings.TrimSpace(out))
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown command", os.Args[1])
		os.Exit(2)
	}
}

func step(kind, arg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch kind {
	case "get":
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, arg, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	case "lookup":
		addrs, err := net.DefaultResolver.LookupHost(ctx, arg)
		return strings.Join(addrs, ","), err
	}
	return "", fmt.Errorf("unknown step %q", kind)
}
