package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vaultpam/appliance/connector/config"
)

// Where `run` takes a token handed over at start, besides --token-file.
const (
	// envTokenFile names a file holding the token (a Kubernetes Secret or
	// a container secret mounted read-only). It is read once at start and
	// never written to.
	envTokenFile = "PAM_ENROLMENT_TOKEN_FILE"
	// envTokenFD is internal: the number of an inherited pipe from which
	// the re-executed connector reads the token that was in
	// PAM_ENROLMENT_TOKEN (see hideTokenFromEnviron).
	envTokenFD = "VAULTPAM_TOKEN_FD"
	// maxToken bounds what is read from any token source: a token is 20
	// characters plus separators, so anything near this is not a token.
	maxToken = 1024
)

// hideTokenFromEnviron makes sure a token given in PAM_ENROLMENT_TOKEN
// never stays readable in /proc/PID/environ, which shows the environment
// the process was started with whatever os.Unsetenv does later. For the
// run command with the variable set, it writes the token into a pipe,
// and re-executes the program (same PID, same argv) with an environment
// that lacks the variable but names the pipe's read end in
// VAULTPAM_TOKEN_FD; the new process reads the token from there once. The
// token never goes into argv, the environment or a file.
//
// It returns nil without doing anything for other commands or when the
// variable is not set, and does not return when the re-exec succeeds.
func hideTokenFromEnviron(args, environ []string) error {
	if len(args) < 2 || args[1] != "run" {
		return nil
	}
	var token string
	found := false
	rest := make([]string, 0, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case config.EnvToken:
			token, found = v, true
			continue
		case envTokenFD:
			continue // never inherit someone else's pipe number
		}
		rest = append(rest, kv)
	}
	if !found {
		return nil
	}
	if len(token) > maxToken {
		return fmt.Errorf("%s is %d bytes long, a token is 20 characters", config.EnvToken, len(token))
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("creating the token pipe: %w", err)
	}
	// The token fits the pipe's buffer (64 KiB, maxToken is far less), so
	// the write completes before anyone reads.
	_, err := unix.Write(p[1], []byte(token))
	unix.Close(p[1])
	if err != nil {
		unix.Close(p[0])
		return fmt.Errorf("writing the token pipe: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(p[0]), unix.F_SETFD, 0); err != nil { // inherit the read end
		unix.Close(p[0])
		return fmt.Errorf("handing the token pipe over: %w", err)
	}
	rest = append(rest, envTokenFD+"="+strconv.Itoa(p[0]))
	err = syscall.Exec("/proc/self/exe", args, rest)
	unix.Close(p[0])
	return fmt.Errorf("re-executing without %s in the environment: %w", config.EnvToken, err)
}

// startToken returns the enrolment or recovery token handed over at start,
// from (first that is set): the token file (--token-file, or
// PAM_ENROLMENT_TOKEN_FILE), the pipe of hideTokenFromEnviron, or
// PAM_ENROLMENT_TOKEN (in-process callers that never re-exec). The
// variables that carry the token are removed from the environment; a file
// is only read. "" means no token.
//
// A missing file is an error when mustExist (--token-file given), and no
// token otherwise: PAM_ENROLMENT_TOKEN_FILE names an optional Kubernetes
// Secret, which may be deleted once the connector has its identity.
func startToken(env Env, file string, mustExist bool) (string, error) {
	var token string
	if fd := env.Getenv(envTokenFD); fd != "" {
		env.Unsetenv(envTokenFD)
		n, err := strconv.Atoi(fd)
		if err != nil || n < 3 {
			return "", fmt.Errorf("%s=%q is not an inherited file descriptor", envTokenFD, fd)
		}
		f := os.NewFile(uintptr(n), "token pipe")
		b, err := io.ReadAll(io.LimitReader(f, maxToken+1))
		f.Close()
		if err != nil {
			return "", fmt.Errorf("reading the token handed over from %s: %w", config.EnvToken, err)
		}
		token = strings.TrimSpace(string(b))
	}
	if v := env.Getenv(config.EnvToken); v != "" {
		env.Unsetenv(config.EnvToken)
		token = strings.TrimSpace(v)
	}
	if file != "" {
		b, err := readTokenFile(file)
		if errors.Is(err, fs.ErrNotExist) && !mustExist {
			return token, nil
		}
		if err != nil {
			return "", err
		}
		if b != "" {
			token = b
		}
	}
	return token, nil
}

func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading token file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxToken+1))
	if err != nil {
		return "", fmt.Errorf("reading token file %s: %w", path, err)
	}
	if len(b) > maxToken {
		return "", errors.New("token file " + path + " is too long to hold a token (a token is 20 characters)")
	}
	return strings.TrimSpace(string(b)), nil
}
