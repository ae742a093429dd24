package gpuwatch

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseGPUBusyPercent(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr string
	}{
		{in: "100\n", want: 100},
		{in: "0\n", want: 0},
		{in: " 5 ", want: 5},
		{in: "95", want: 95},
		{in: "", wantErr: `gpu_busy_percent "": want a whole percentage from 0 to 100`},
		{in: "\n", wantErr: `gpu_busy_percent ""`},
		{in: "abc\n", wantErr: `gpu_busy_percent "abc"`},
		{in: "-1\n", wantErr: `gpu_busy_percent "-1"`},
		{in: "101\n", wantErr: `gpu_busy_percent "101"`},
		{in: "99999999999999999999999\n", wantErr: `gpu_busy_percent "99999999999999999999999"`},
		{in: "50%\n", wantErr: `gpu_busy_percent "50%"`},
		{in: "5.5\n", wantErr: `gpu_busy_percent "5.5"`},
		{in: "1 2\n", wantErr: `gpu_busy_percent "1 2"`},
		{in: "\x00\xff", wantErr: `gpu_busy_percent "\x00\xff"`},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			got, err := parseGPUBusyPercent([]byte(tt.in))
			checkErr(t, err, tt.wantErr)
			if err == nil && got != tt.want {
				t.Errorf("parseGPUBusyPercent(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseHwmonPower(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr string
	}{
		{in: "66000000\n", want: 66_000_000},
		{in: "0\n", want: 0},
		{in: "10000000000\n", want: 10_000_000_000},
		{in: "10000000001\n", wantErr: `hwmon power "10000000001": want microwatts, a whole number from 0 to 10000000000`},
		{in: "-5\n", wantErr: `hwmon power "-5"`},
		{in: "66 W\n", wantErr: `hwmon power "66 W"`},
		{in: "", wantErr: `hwmon power ""`},
		{in: "18446744073709551616\n", wantErr: `hwmon power "18446744073709551616"`},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			got, err := parseHwmonPower([]byte(tt.in))
			checkErr(t, err, tt.wantErr)
			if err == nil && got != tt.want {
				t.Errorf("parseHwmonPower(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestParsePPDPMSclk(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		wantLevels  []int
		wantCurrent int
		wantErr     string
	}{
		{name: "rdna4 stuck at top", in: "0: 500Mhz \n1: 2350Mhz \n2: 3470Mhz *\n", wantLevels: []int{500, 2350, 3470}, wantCurrent: 3470},
		{name: "idle", in: "0: 500Mhz *\n1: 3470Mhz \n", wantLevels: []int{500, 3470}, wantCurrent: 500},
		{name: "sleep level", in: "S: 19Mhz *\n0: 500Mhz\n1: 2100Mhz\n", wantLevels: []int{19, 500, 2100}, wantCurrent: 19},
		{name: "no mark", in: "0: 500Mhz\n1: 3470Mhz\n", wantLevels: []int{500, 3470}, wantCurrent: -1},
		{name: "MHz spelling and blank lines", in: "\n0: 500MHz\n\n1: 800mhz *\n", wantLevels: []int{500, 800}, wantCurrent: 800},
		{name: "empty", in: "", wantErr: "pp_dpm_sclk is empty"},
		{name: "two marks", in: "0: 500Mhz *\n1: 3470Mhz *\n", wantErr: "pp_dpm_sclk line 2: a second line marked '*'"},
		{name: "no unit", in: "0: 500\n", wantErr: `pp_dpm_sclk line 1 clock "500": want whole MHz from 0 to 100000`},
		{name: "negative", in: "0: -500Mhz\n", wantErr: `clock "-500Mhz"`},
		{name: "plus sign", in: "0: +500Mhz\n", wantErr: `clock "+500Mhz"`},
		{name: "enormous", in: "0: 99999999999Mhz\n", wantErr: `clock "99999999999Mhz"`},
		{name: "no colon", in: "0 500Mhz\n", wantErr: `pp_dpm_sclk line 1 "0 500Mhz": want "N: <clock>Mhz" with an optional '*'`},
		{name: "junk after", in: "0: 500Mhz x\n", wantErr: `unexpected "x" after the clock`},
		{name: "too many fields", in: "0: 500Mhz * *\n", wantErr: `pp_dpm_sclk line 1`},
		{name: "bad label", in: "-: 500Mhz\n", wantErr: `pp_dpm_sclk line 1`},
		{name: "overlong line", in: strings.Repeat("x", 4000), wantErr: `pp_dpm_sclk line 1 "xxxx`},
		{name: "longer than a page", in: strings.Repeat("0: 1Mhz\n", 600), wantErr: "pp_dpm_sclk is 4800 bytes long, at most 4096 accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			levels, current, err := parsePPDPMSclk([]byte(tt.in))
			checkErr(t, err, tt.wantErr)
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.wantLevels, levels); diff != "" {
				t.Errorf("levels mismatch (-want +got):\n%s", diff)
			}
			if current != tt.wantCurrent {
				t.Errorf("current = %d, want %d", current, tt.wantCurrent)
			}
		})
	}
}

func TestNormalizePCIID(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "0000:03:00.0", want: "0000:03:00.0"},
		{in: "0000:C4:1F.7", want: "0000:c4:1f.7"},
		{in: "0:3:0.0", want: "0000:03:00.0"},
		{in: "10000:e0:00.0", want: "10000:e0:00.0"},
		{in: "03:00.0", wantErr: true},
		{in: "0000:03:00", wantErr: true},
		{in: "0000:03:20.0", wantErr: true},
		{in: "0000:03:00.8", wantErr: true},
		{in: "0000:103:00.0", wantErr: true},
		{in: "0000:0g:00.0", wantErr: true},
		{in: "0000:-3:00.0", wantErr: true},
		{in: "0x00:03:00.0", wantErr: true},
		{in: "", wantErr: true},
		{in: "card1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := normalizePCIID(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("normalizePCIID(%q) = %q, want an error", tt.in, got)
				}
				if !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
					t.Errorf("error %q does not name %q", err, tt.in)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("normalizePCIID(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseUeventPCISlot(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "DRIVER=amdgpu\nPCI_SLOT_NAME=0000:03:00.0\n", want: "0000:03:00.0"},
		{in: "PCI_SLOT_NAME=0000:0A:00.0", want: "0000:0a:00.0"},
		{in: "DRIVER=simple-framebuffer\n", wantErr: "uevent has no PCI_SLOT_NAME"},
		{in: "PCI_SLOT_NAME=nonsense\n", wantErr: `PCI address "nonsense"`},
		{in: "", wantErr: "uevent has no PCI_SLOT_NAME"},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			got, err := parseUeventPCISlot([]byte(tt.in))
			checkErr(t, err, tt.wantErr)
			if err == nil && got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIsDRMCardName(t *testing.T) {
	for name, want := range map[string]bool{
		"card0": true, "card12": true, "card": false, "card1-DP-1": false, "renderD128": false,
		"cardx": false, "version": false, "card1234567": false,
	} {
		if got := isDRMCardName(name); got != want {
			t.Errorf("isDRMCardName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestScanDRMCards(t *testing.T) {
	tests := []struct {
		name  string
		root  func(t *testing.T) string
		want  map[string]string
		links bool
	}{
		{
			name: "committed rdna4 tree, matched by uevent",
			root: func(*testing.T) string { return "testdata/sysfs-rdna4" },
			want: map[string]string{"0000:03:00.0": "card1"},
		},
		{
			name: "real layout with links",
			root: func(t *testing.T) string {
				return buildFakeSysfs(t, fakeCard{name: "card0", pci: "0000:0c:00.0", link: true, busy: "3"},
					fakeCard{name: "card1", pci: "0000:03:00.0", link: true, busy: "100"})
			},
			want:  map[string]string{"0000:03:00.0": "card1", "0000:0c:00.0": "card0"},
			links: true,
		},
		{
			name: "no drm class",
			root: func(t *testing.T) string { return t.TempDir() },
			want: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.links && runtime.GOOS == "windows" {
				t.Skip("sysfs links")
			}
			got, err := scanDRMCards(osWatchdogFS{root: tt.root(t)})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("scanDRMCards mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadWatchdogFileTooLong(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "big"), []byte(strings.Repeat("1", watchdogSysfsMax+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := readWatchdogFile(osWatchdogFS{root: root}, "big")
	checkErr(t, err, fmt.Sprintf("big: longer than %d bytes, not a sysfs value", watchdogSysfsMax))
}

// checkErr fails unless err contains want, or err is nil and want is "".
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("error = nil, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not contain %q", err, want)
	}
}

// Fuzz targets: the parsers never panic, and what they accept is in range
// and survives a round trip.

func FuzzWatchdogBusyPercent(f *testing.F) {
	for _, s := range []string{"100\n", "0\n", "95", "-1\n", "101", "abc", "", "99999999999999999999", "+5\n", " 7 \n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseGPUBusyPercent(data)
		if err != nil {
			return
		}
		if v < 0 || v > 100 {
			t.Fatalf("parseGPUBusyPercent(%q) = %d, out of range", data, v)
		}
		if again, err := parseGPUBusyPercent([]byte(strconv.Itoa(v) + "\n")); err != nil || again != v {
			t.Fatalf("round trip of %d: %d, %v", v, again, err)
		}
	})
}

func FuzzWatchdogHwmonPower(f *testing.F) {
	for _, s := range []string{"66000000\n", "0\n", "10000000000\n", "10000000001\n", "-5", "18446744073709551616", "x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseHwmonPower(data)
		if err != nil {
			return
		}
		if v > watchdogMaxMicrowatts {
			t.Fatalf("parseHwmonPower(%q) = %d, out of range", data, v)
		}
		if again, err := parseHwmonPower([]byte(strconv.FormatUint(v, 10) + "\n")); err != nil || again != v {
			t.Fatalf("round trip of %d: %d, %v", v, again, err)
		}
	})
}

func FuzzWatchdogPPDPMSclk(f *testing.F) {
	for _, s := range []string{
		"0: 500Mhz \n1: 2350Mhz \n2: 3470Mhz *\n",
		"S: 19Mhz *\n0: 500Mhz\n1: 2100Mhz\n",
		"0: 500Mhz *\n1: 3470Mhz *\n",
		"0: 500\n", "", "0: -1Mhz\n", "0: 500MHZ *\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		levels, current, err := parsePPDPMSclk(data)
		if err != nil {
			return
		}
		if len(levels) == 0 {
			t.Fatalf("accepted %q with no levels", data)
		}
		var b strings.Builder
		marked := false
		for i, l := range levels {
			if l < 0 || l > watchdogMaxMHz {
				t.Fatalf("level %d out of range in %q", l, data)
			}
			fmt.Fprintf(&b, "%d: %dMhz", i, l)
			if l == current && !marked {
				b.WriteString(" *")
				marked = true
			}
			b.WriteString("\n")
		}
		if current != -1 && !marked {
			t.Fatalf("current %d is not a level of %v", current, levels)
		}
		levels2, current2, err := parsePPDPMSclk([]byte(b.String()))
		if err != nil {
			t.Fatalf("re-serialized %q does not parse: %v", b.String(), err)
		}
		if diff := cmp.Diff(levels, levels2); diff != "" || current2 != current {
			t.Fatalf("round trip differs (current %d vs %d):\n%s", current, current2, diff)
		}
	})
}

func FuzzWatchdogPCIID(f *testing.F) {
	for _, s := range []string{"0000:03:00.0", "0:3:0.0", "10000:e0:00.0", "0000:03:20.0", "03:00.0", "", "PCI_SLOT_NAME=0000:03:00.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if id, err := normalizePCIID(s); err == nil {
			again, err := normalizePCIID(id)
			if err != nil || again != id {
				t.Fatalf("normalizePCIID(%q) = %q, not a fixed point: %q, %v", s, id, again, err)
			}
		}
		if id, err := parseUeventPCISlot([]byte(s)); err == nil {
			if again, err := normalizePCIID(id); err != nil || again != id {
				t.Fatalf("uevent %q gave %q, not normalized", s, id)
			}
		}
	})
}

func TestParseMESFirmware(t *testing.T) {
	for in, want := range map[string]string{
		"0x00000080\n": "0x00000080",
		"0x7a":         "0x0000007a",
		" 0X0000007A ": "0x0000007a",
		"80":           "",
		"0x":           "",
		"0x123456789":  "",
		"0xzz":         "",
		"":             "",
	} {
		if got := parseMESFirmware([]byte(in)); got != want {
			t.Errorf("parseMESFirmware(%q) = %q, want %q", in, got, want)
		}
	}
}
