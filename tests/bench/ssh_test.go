package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// startSSH starts a throwaway sshd on loopback and an `ssh -R` client that
// forwards two ports on the sshd side to the echo and sink targets: the
// OpenSSH equivalent of the tunnel (the ssh client plays the connector).
func (e *env) startSSH() (path, error) {
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/sshd"); serr != nil {
			return path{}, fmt.Errorf("sshd not installed (Debian package openssh-server)")
		}
		sshd = "/usr/sbin/sshd"
	}
	for _, tool := range []string{"ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			return path{}, fmt.Errorf("%s not installed (Debian package openssh-client)", tool)
		}
	}
	if os.Geteuid() != 0 {
		return path{}, fmt.Errorf("sshd needs root for privilege separation here")
	}
	os.MkdirAll("/run/sshd", 0o755)
	dir := filepath.Join(e.dir, "ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return path{}, err
	}
	for _, k := range []string{"host_key", "user_key"} {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput()
		if err != nil {
			return path{}, fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "user_key.pub"))
	if err != nil {
		return path{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		return path{}, err
	}
	port, err := freePort()
	if err != nil {
		return path{}, err
	}
	conf := strings.Join([]string{
		"ListenAddress 127.0.0.1:" + port,
		"HostKey " + filepath.Join(dir, "host_key"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"AllowTcpForwarding yes",
		"GatewayPorts no",
		"PidFile none",
		"LogLevel ERROR",
	}, "\n") + "\n"
	confPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return path{}, err
	}
	d := exec.Command(sshd, "-D", "-e", "-f", confPath)
	if logf, err := os.Create(filepath.Join(dir, "sshd.log")); err == nil {
		d.Stderr = logf // port probes make sshd log "connection closed"
		defer logf.Close()
	}
	if err := d.Start(); err != nil {
		return path{}, fmt.Errorf("starting sshd: %w", err)
	}
	e.procs = append(e.procs, d)
	if err := waitPort("127.0.0.1:" + port); err != nil {
		return path{}, fmt.Errorf("sshd did not listen: %w", err)
	}

	fwd := map[string]string{}
	args := []string{"-N", "-F", "/dev/null", "-i", filepath.Join(dir, "user_key"), "-p", port,
		"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR"}
	for _, target := range []string{e.echo.Addr, e.sink.Addr} {
		rp, err := freePort()
		if err != nil {
			return path{}, err
		}
		fwd[target] = "127.0.0.1:" + rp
		args = append(args, "-R", "127.0.0.1:"+rp+":"+target)
	}
	c := exec.Command("ssh", append(args, "root@127.0.0.1")...)
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		return path{}, fmt.Errorf("starting ssh -R: %w", err)
	}
	e.procs = append(e.procs, c)
	for _, addr := range fwd {
		if err := waitPort(addr); err != nil {
			return path{}, fmt.Errorf("ssh -R forward %s did not come up: %w", addr, err)
		}
	}
	return path{name: "ssh -R", pid: c.Process.Pid, dial: func(ctx context.Context, target string) (conn, error) {
		addr, ok := fwd[target]
		if !ok {
			return nil, fmt.Errorf("no ssh forward for %s", target)
		}
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return c.(*net.TCPConn), nil
	}}, nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port, nil
}

func waitPort(addr string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
