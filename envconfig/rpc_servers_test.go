package envconfig

import (
	"slices"
	"strings"
	"testing"
)

func TestParseRPCServers(t *testing.T) {
	tests := []struct {
		value   string
		want    []string
		wantErr string
	}{
		{value: "", want: nil},
		{value: "10.0.0.2:50052", want: []string{"10.0.0.2:50052"}},
		{value: " 10.0.0.2:50052 , gpu-box:50053", want: []string{"10.0.0.2:50052", "gpu-box:50053"}},
		{value: "[fd00::2]:50052", wantErr: `"[fd00::2]:50052": llama.cpp's RPC client takes an IPv4 address or a host name, not IPv6`},
		{value: "10.0.0.2:050052", want: []string{"10.0.0.2:50052"}},
		{value: "10.0.0.2:50052,10.0.0.2:050052", wantErr: `"10.0.0.2:050052" is listed twice`},
		{value: "10.0.0.2", wantErr: `"10.0.0.2" is not host:port`},
		{value: "10.0.0.2:50052,", wantErr: `"" is not host:port`},
		{value: ":50052", wantErr: `":50052" is not host:port`},
		{value: "10.0.0.2:0", wantErr: `port "0" is not a number from 1 to 65535`},
		{value: "10.0.0.2:rpc", wantErr: `port "rpc"`},
		{value: "10.0.0.2:70000", wantErr: `port "70000"`},
		{value: "fd00::2:50052", wantErr: `"fd00::2:50052" is not host:port`},
		{value: "a:1,a:1", wantErr: `"a:1" is listed twice`},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			got, err := ParseRPCServers(tt.value)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), RPCServersEnv) {
					t.Fatalf("ParseRPCServers(%q) error = %v, want one naming %s and containing %s", tt.value, err, RPCServersEnv, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseRPCServers(%q) = %q, %v; want %q", tt.value, got, err, tt.want)
			}
		})
	}
}

func TestCheckBackendSelectionRefusesBadRPCServers(t *testing.T) {
	t.Setenv(RPCServersEnv, "10.0.0.2:50052,10.0.0.3")
	err := CheckBackendSelection()
	if err == nil || !strings.Contains(err.Error(), `"10.0.0.3" is not host:port`) {
		t.Fatalf("CheckBackendSelection() = %v, want the bad item named", err)
	}
	if got := RPCServers(); got != nil {
		t.Fatalf("RPCServers() = %q with a bad value, want none", got)
	}
}
