// Package bench measures the tunnel (`make bench`): throughput with one and
// eight streams, session open latency, interactive echo latency under a
// bulk stream, and the connector's memory idle and with 1,000 open
// sessions — side by side with direct TCP and with an OpenSSH reverse
// tunnel (ssh -R through a throwaway sshd on loopback). The connector runs
// as a separate process (this test binary re-executed) so its RSS is its
// own. Results go to a table on stdout and to build/bench.json.
package bench
