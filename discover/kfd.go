package discover

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/costa-os/ollama-backend-select/envconfig"
)

// kfdNodesDir is where the amdgpu kernel driver (KFD) lists its topology nodes.
const kfdNodesDir = "sys/class/kfd/kfd/topology/nodes"

// kfdPropertiesMax bounds a read; sysfs files are at most a page.
const kfdPropertiesMax = 64 << 10

type kfdNode struct {
	Node int

	// GfxTarget is the hardware's gfx name ("gfx1200"); unlike what HIP
	// reports, HSA_OVERRIDE_GFX_VERSION does not change it.
	GfxTarget string

	GfxTargetVersion uint64

	// PCIID is in ml.DeviceInfo.PCIID's form, or "" without location_id. HIP
	// always prints function 0; GPUs sit on function 0 in practice.
	PCIID string

	VendorID, DeviceID uint32

	UniqueID uint64

	// DRMRenderMinor is 0 when absent (render minors start at 128).
	DRMRenderMinor uint32
}

// readKFDNodes reads the GPU nodes of the KFD topology under root, sorted by
// node number. A missing topology is no nodes and no error. A node that
// cannot be read is left out and named in the error, while the others are
// still returned.
func readKFDNodes(root string) ([]kfdNode, error) {
	dir := filepath.Join(root, filepath.FromSlash(kfdNodesDir))
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading KFD topology: %w", err)
	}

	type numbered struct {
		n    int
		name string
	}
	var nums []numbered
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n < 0 || strconv.Itoa(n) != e.Name() {
			continue
		}
		nums = append(nums, numbered{n, e.Name()})
	}
	slices.SortFunc(nums, func(a, b numbered) int { return cmp.Compare(a.n, b.n) })

	var (
		nodes []kfdNode
		errs  []error
	)
	for _, num := range nums {
		file := filepath.Join(dir, num.name, "properties")
		data, err := readKFDFile(file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		props, err := parseKFDProperties(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", file, err))
			continue
		}
		node, isGPU, err := kfdNodeFromProperties(num.n, props)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", file, err))
			continue
		}
		if isGPU {
			nodes = append(nodes, node)
		}
	}
	return nodes, errors.Join(errs...)
}

func readKFDFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err // *fs.PathError names the file
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, kfdPropertiesMax+1))
	if err != nil {
		return nil, err // *fs.PathError names the file
	}
	if len(data) > kfdPropertiesMax {
		return nil, fmt.Errorf("%s: longer than %d bytes, not a KFD properties file", file, kfdPropertiesMax)
	}
	return data, nil
}

// parseKFDProperties parses "key value" lines; a malformed line or a repeated
// key is an error naming the line.
func parseKFDProperties(data []byte) (map[string]string, error) {
	props := make(map[string]string)
	err := ScanFieldLines(data, kfdPropertiesMax, func(line int, text string, f []string) error {
		if len(f) != 2 {
			return fmt.Errorf("line %d %q: want \"key value\"", line, envconfig.Shorten(text))
		}
		if _, dup := props[f[0]]; dup {
			return fmt.Errorf("line %d: key %q repeated", line, envconfig.Shorten(f[0]))
		}
		props[f[0]] = f[1]
		return nil
	})
	if err != nil {
		return nil, err
	}
	return props, nil
}

// ScanFieldLines calls fn with each non-blank line of a small sysfs file and
// its fields, stopping at fn's first error or a line longer than max.
func ScanFieldLines(data []byte, max int, fn func(line int, text string, fields []string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 256), max+1)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		if err := fn(line, text, strings.Fields(text)); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("after line %d: %w", line, err)
	}
	return nil
}

// kfdNodeFromProperties builds a node from parsed properties. CPU nodes have
// gfx_target_version 0, or on older kernels no key and no SIMDs.
func kfdNodeFromProperties(n int, props map[string]string) (node kfdNode, isGPU bool, err error) {
	node.Node = n

	version, ok, err := kfdUint(props, "gfx_target_version", 64)
	if err != nil {
		return kfdNode{}, false, err
	}
	if !ok {
		simds, _, err := kfdUint(props, "simd_count", 64)
		if err != nil {
			return kfdNode{}, false, err
		}
		if simds == 0 {
			return kfdNode{}, false, nil
		}
		return kfdNode{}, false, fmt.Errorf("GPU node (simd_count %d) without gfx_target_version", simds)
	}
	if version == 0 {
		return kfdNode{}, false, nil
	}
	node.GfxTargetVersion = version
	if node.GfxTarget, err = gfxTargetName(version); err != nil {
		return kfdNode{}, false, err
	}

	loc, hasLoc, err := kfdUint(props, "location_id", 16)
	if err != nil {
		return kfdNode{}, false, err
	}
	domain, _, err := kfdUint(props, "domain", 32)
	if err != nil {
		return kfdNode{}, false, err
	}
	if hasLoc {
		// location_id is bus<<8 | device<<3 | function. Kernels before the domain
		// key only ran GPUs in domain 0.
		node.PCIID = fmt.Sprintf("%04x:%02x:%02x.%x", domain, loc>>8, (loc>>3)&0x1f, loc&7)
	}

	var v uint64
	if v, _, err = kfdUint(props, "vendor_id", 32); err != nil {
		return kfdNode{}, false, err
	}
	node.VendorID = uint32(v)
	if v, _, err = kfdUint(props, "device_id", 32); err != nil {
		return kfdNode{}, false, err
	}
	node.DeviceID = uint32(v)
	if node.UniqueID, _, err = kfdUint(props, "unique_id", 64); err != nil {
		return kfdNode{}, false, err
	}
	if v, _, err = kfdUint(props, "drm_render_minor", 32); err != nil {
		return kfdNode{}, false, err
	}
	node.DRMRenderMinor = uint32(v)
	return node, true, nil
}

func kfdUint(props map[string]string, key string, bits int) (v uint64, ok bool, err error) {
	s, ok := props[key]
	if !ok {
		return 0, false, nil
	}
	v, err = strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, false, fmt.Errorf("%s %q: want an unsigned decimal of at most %d bits", key, envconfig.Shorten(s), bits)
	}
	return v, true, nil
}

// gfxTargetName turns a KFD gfx_target_version (major*10000 + minor*100 +
// stepping) into ROCm's name: 120001 is gfx1201, 90010 gfx90a.
func gfxTargetName(version uint64) (string, error) {
	major := version / 10000
	minor := version / 100 % 100
	stepping := version % 100
	if major == 0 {
		return "", fmt.Errorf("gfx_target_version %d: major version 0, not a GPU", version)
	}
	if minor > 0xf || stepping > 0xf {
		return "", fmt.Errorf("gfx_target_version %d: minor %d and stepping %d must each be at most 15", version, minor, stepping)
	}
	return fmt.Sprintf("gfx%d%x%x", major, minor, stepping), nil
}

// KFDGfxTarget returns the gfx target that the KFD topology under root
// reports for the GPU at pciID, or "" when KFD does not know it.
func KFDGfxTarget(root, pciID string) string {
	nodes, _ := readKFDNodes(root)
	for _, n := range nodes {
		if n.PCIID == pciID {
			return n.GfxTarget
		}
	}
	return ""
}
