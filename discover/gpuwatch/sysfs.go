package gpuwatch

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/costa-os/ollama-backend-select/discover"
	"github.com/costa-os/ollama-backend-select/envconfig"
)

// DRM sysfs layout, relative to the filesystem root. amdgpu puts its
// counters in the PCI function a card's "device" link points to.
const (
	watchdogDRMDir     = "sys/class/drm"
	watchdogBusyFile   = "gpu_busy_percent"
	watchdogSclkFile   = "pp_dpm_sclk"
	watchdogUeventFile = "uevent"
	watchdogHwmonDir   = "hwmon"
	watchdogBootIDFile = "proc/sys/kernel/random/boot_id"
	// watchdogMESFile is the MES firmware version, which AMD asks for in
	// reports of a GPU stuck busy. Kernels without MES support lack it.
	watchdogMESFile = "fw_version/mes_fw_version"
)

// watchdogPowerFiles are tried in order: some newer GPUs have only power1_input.
var watchdogPowerFiles = []string{"power1_average", "power1_input"}

// watchdogSysfsMax bounds a read; sysfs files are at most a page.
const watchdogSysfsMax = 4096

// Plausibility bounds: values outside them are junk, not a GPU state.
const (
	watchdogMaxMHz        = 100_000        // 100 GHz
	watchdogMaxMicrowatts = 10_000_000_000 // 10 kW
)

// watchdogFS is the part of the filesystem the watchdog reads, by
// slash-separated names relative to the root; tests script it.
type watchdogFS interface {
	// ReadFile returns at most max+1 bytes, so a caller can tell a longer file.
	ReadFile(name string, max int) ([]byte, error)
	ReadDir(name string) ([]fs.DirEntry, error)
	Readlink(name string) (string, error)
	Stat(name string) (fs.FileInfo, error)
}

type osWatchdogFS struct{ root string }

func (o osWatchdogFS) path(name string) string {
	return filepath.Join(o.root, filepath.FromSlash(name))
}

func (o osWatchdogFS) ReadFile(name string, max int) ([]byte, error) {
	f, err := os.Open(o.path(name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, int64(max)+1))
}

func (o osWatchdogFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(o.path(name)) }

func (o osWatchdogFS) Readlink(name string) (string, error)  { return os.Readlink(o.path(name)) }
func (o osWatchdogFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(o.path(name)) }

func readWatchdogFile(fsys watchdogFS, name string) ([]byte, error) {
	data, err := fsys.ReadFile(name, watchdogSysfsMax)
	if err != nil {
		return nil, err
	}
	if len(data) > watchdogSysfsMax {
		return nil, fmt.Errorf("%s: longer than %d bytes, not a sysfs value", name, watchdogSysfsMax)
	}
	return data, nil
}

func parseGPUBusyPercent(data []byte) (int, error) {
	s := strings.TrimSpace(string(data))
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > 100 {
		return 0, fmt.Errorf("gpu_busy_percent %q: want a whole percentage from 0 to 100", envconfig.Shorten(s))
	}
	return v, nil
}

// parseHwmonPower parses a decimal count of microwatts.
func parseHwmonPower(data []byte) (uint64, error) {
	s := strings.TrimSpace(string(data))
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > watchdogMaxMicrowatts {
		return 0, fmt.Errorf("hwmon power %q: want microwatts, a whole number from 0 to %d", envconfig.Shorten(s), uint64(watchdogMaxMicrowatts))
	}
	return v, nil
}

// parsePPDPMSclk parses pp_dpm_sclk, one clock level a line ("1: 2350Mhz *"),
// the current one marked '*'. Some GPUs label a sleep clock "S:". current is
// -1 when no line is marked.
func parsePPDPMSclk(data []byte) (levels []int, current int, err error) {
	current = -1
	if len(data) > watchdogSysfsMax {
		return nil, -1, fmt.Errorf("pp_dpm_sclk is %d bytes long, at most %d accepted", len(data), watchdogSysfsMax)
	}
	err = discover.ScanFieldLines(data, watchdogSysfsMax, func(line int, text string, f []string) error {
		if len(f) < 2 || len(f) > 3 || len(f[0]) < 2 || !strings.HasSuffix(f[0], ":") || !isWatchdogLabel(f[0][:len(f[0])-1]) {
			return fmt.Errorf("line %d %q: want \"N: <clock>Mhz\" with an optional '*'", line, envconfig.Shorten(text))
		}
		mhz, ok := strings.CutSuffix(strings.ToLower(f[1]), "mhz")
		v, convErr := strconv.Atoi(mhz)
		if !ok || convErr != nil || v < 0 || v > watchdogMaxMHz || mhz[0] == '+' || mhz[0] == '-' {
			return fmt.Errorf("line %d clock %q: want whole MHz from 0 to %d, like \"500Mhz\"", line, envconfig.Shorten(f[1]), watchdogMaxMHz)
		}
		if len(f) == 3 {
			if f[2] != "*" {
				return fmt.Errorf("line %d %q: unexpected %q after the clock", line, envconfig.Shorten(text), envconfig.Shorten(f[2]))
			}
			if current >= 0 {
				return fmt.Errorf("line %d: a second line marked '*'", line)
			}
			current = v
		}
		levels = append(levels, v)
		return nil
	})
	if err != nil {
		return nil, -1, fmt.Errorf("pp_dpm_sclk %w", err)
	}
	if len(levels) == 0 {
		return nil, -1, errors.New("pp_dpm_sclk is empty")
	}
	return levels, current, nil
}

func isWatchdogLabel(s string) bool {
	if s == "" || len(s) > 8 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// normalizePCIID normalizes a PCI address to ml.DeviceInfo.PCIID's form,
// "0000:03:00.0", accepting any case and leading zeros left out.
func normalizePCIID(s string) (string, error) {
	bad := func() (string, error) {
		return "", fmt.Errorf("PCI address %q: want domain:bus:device.function in hex, like \"0000:03:00.0\"", envconfig.Shorten(s))
	}
	head, fn, ok := strings.Cut(s, ".")
	if !ok {
		return bad()
	}
	parts := strings.Split(head, ":")
	if len(parts) != 3 {
		return bad()
	}
	domain, ok1 := parseWatchdogHex(parts[0], 8, 1<<32-1)
	bus, ok2 := parseWatchdogHex(parts[1], 2, 0xff)
	dev, ok3 := parseWatchdogHex(parts[2], 2, 0x1f)
	fun, ok4 := parseWatchdogHex(fn, 1, 7)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return bad()
	}
	return fmt.Sprintf("%04x:%02x:%02x.%x", domain, bus, dev, fun), nil
}

func parseWatchdogHex(s string, digits int, max uint64) (uint64, bool) {
	if s == "" || len(s) > digits {
		return 0, false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 16, 64)
	return v, err == nil && v <= max
}

func parseUeventPCISlot(data []byte) (string, error) {
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PCI_SLOT_NAME="); ok {
			return normalizePCIID(v)
		}
	}
	return "", errors.New("uevent has no PCI_SLOT_NAME")
}

// isDRMCardName accepts "card0", not a connector ("card0-DP-1").
func isDRMCardName(name string) bool {
	n, ok := strings.CutPrefix(name, "card")
	if !ok || n == "" || len(n) > 6 {
		return false
	}
	for _, r := range n {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// drmCardPCIID returns the PCI address of a DRM card from its "device" link,
// or else its uevent; ok is false for a card that is not a PCI device.
func drmCardPCIID(fsys watchdogFS, card string) (string, bool) {
	dev := path.Join(watchdogDRMDir, card, "device")
	if target, err := fsys.Readlink(dev); err == nil {
		if id, err := normalizePCIID(path.Base(filepath.ToSlash(target))); err == nil {
			return id, true
		}
	}
	data, err := readWatchdogFile(fsys, path.Join(dev, watchdogUeventFile))
	if err != nil {
		return "", false
	}
	id, err := parseUeventPCISlot(data)
	return id, err == nil
}

// scanDRMCards maps the PCI address of every DRM card to its directory name.
func scanDRMCards(fsys watchdogFS) (map[string]string, error) {
	entries, err := fsys.ReadDir(watchdogDRMDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return map[string]string{}, nil
		}
		return nil, err
	}
	cards := make(map[string]string)
	for _, e := range entries {
		if !isDRMCardName(e.Name()) {
			continue
		}
		if id, ok := drmCardPCIID(fsys, e.Name()); ok {
			if _, dup := cards[id]; !dup {
				cards[id] = e.Name()
			}
		}
	}
	return cards, nil
}

func readBusy(fsys watchdogFS, card string) (int, error) {
	name := path.Join(watchdogDRMDir, card, "device", watchdogBusyFile)
	data, err := readWatchdogFile(fsys, name)
	if err != nil {
		return 0, err
	}
	v, err := parseGPUBusyPercent(data)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// readMESFirmware reads a card's MES firmware version as "0x" and 8 hex
// digits, or "" when the kernel does not expose it.
func readMESFirmware(fsys watchdogFS, card string) string {
	data, err := readWatchdogFile(fsys, path.Join(watchdogDRMDir, card, "device", watchdogMESFile))
	if err != nil {
		return ""
	}
	return parseMESFirmware(data)
}

func parseMESFirmware(data []byte) string {
	s := strings.TrimSpace(string(data))
	hex, ok := strings.CutPrefix(strings.ToLower(s), "0x")
	if !ok {
		return ""
	}
	v, ok := parseWatchdogHex(hex, 8, 1<<32-1)
	if !ok {
		return ""
	}
	return fmt.Sprintf("0x%08x", v)
}

// readClock reads the current and top core clock; -1 for what is unknown.
func readClock(fsys watchdogFS, card string) (current, top int, err error) {
	name := path.Join(watchdogDRMDir, card, "device", watchdogSclkFile)
	data, err := readWatchdogFile(fsys, name)
	if err != nil {
		return -1, -1, err
	}
	levels, current, err := parsePPDPMSclk(data)
	if err != nil {
		return -1, -1, fmt.Errorf("%s: %w", name, err)
	}
	top = -1
	for _, l := range levels {
		top = max(top, l)
	}
	return current, top, nil
}

func findPowerFile(fsys watchdogFS, card string) string {
	dir := path.Join(watchdogDRMDir, card, "device", watchdogHwmonDir)
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "hwmon") {
			continue
		}
		for _, f := range watchdogPowerFiles {
			name := path.Join(dir, e.Name(), f)
			if _, err := fsys.Stat(name); err == nil {
				return name
			}
		}
	}
	return ""
}

func readPower(fsys watchdogFS, name string) (int64, error) {
	data, err := readWatchdogFile(fsys, name)
	if err != nil {
		return -1, err
	}
	v, err := parseHwmonPower(data)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", name, err)
	}
	return int64(v), nil
}

func readBootID(fsys watchdogFS) string {
	data, err := readWatchdogFile(fsys, watchdogBootIDFile)
	if err != nil {
		return ""
	}
	id := strings.TrimSpace(string(data))
	if len(id) > 64 {
		return ""
	}
	return id
}
