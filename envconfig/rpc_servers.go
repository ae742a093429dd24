package envconfig

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
)

// RPCServersEnv lists the remote ggml RPC servers (`ollama rpc`) whose
// devices this server may use.
const RPCServersEnv = "OLLAMA_RPC_SERVERS"

// ParseRPCServers parses host:port[,host:port...]; the error names the item.
func ParseRPCServers(value string) ([]string, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, nil
	}
	var endpoints []string
	for _, item := range strings.Split(value, ",") {
		item = strings.TrimSpace(item)
		endpoint, err := ParseEndpoint(item)
		if err != nil {
			return nil, fmt.Errorf("%s=%q: %w", RPCServersEnv, value, err)
		}
		if slices.Contains(endpoints, endpoint) {
			return nil, fmt.Errorf("%s=%q: %q is listed twice", RPCServersEnv, value, item)
		}
		endpoints = append(endpoints, endpoint)
	}
	return endpoints, nil
}

// ParseEndpoint checks one host:port and returns it as llama.cpp's --rpc
// reads it: the client splits at the first colon and speaks IPv4 only.
func ParseEndpoint(item string) (string, error) {
	host, port, err := net.SplitHostPort(item)
	if err != nil || host == "" || strings.ContainsAny(host, " /") {
		return "", fmt.Errorf("%q is not host:port (e.g. 10.0.0.2:50052, gpu-box:50052)", item)
	}
	if strings.Contains(host, ":") {
		return "", fmt.Errorf("%q: llama.cpp's RPC client takes an IPv4 address or a host name, not IPv6", item)
	}
	n, err := ParsePort(port)
	if err != nil {
		return "", fmt.Errorf("%q: %w", item, err)
	}
	// one spelling per endpoint: ggml tells servers apart by the string
	return host + ":" + strconv.Itoa(n), nil
}

// ParsePort checks a TCP port number.
func ParsePort(port string) (int, error) {
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return n, nil
}

// RPCServers reads OLLAMA_RPC_SERVERS; a bad value counts as not set here,
// since the server refuses to start with one (CheckBackendSelection).
func RPCServers() []string {
	endpoints, _ := ParseRPCServers(os.Getenv(RPCServersEnv))
	return endpoints
}
