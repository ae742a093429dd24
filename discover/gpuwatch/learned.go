package gpuwatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/costa-os/ollama-backend-select/discover"
	"github.com/costa-os/ollama-backend-select/envconfig"
)

// stateFileName is the learned-quirks file in the server's home directory.
const stateFileName = "backend-quirks.json"

const (
	learnedQuirksVersion = 1

	// learnedQuirksMaxSize bounds the file; a bigger one is not one we wrote.
	learnedQuirksMaxSize = 1 << 20

	learnedQuirksMaxEntries = 256
)

type learnedCause string

const (
	causeStuckBusy learnedCause = "stuck-busy"

	causeCrashes learnedCause = "crashes"

	// causeLoadDeath: the runner died loading the model (watcher.loadDied).
	causeLoadDeath learnedCause = "load-death"
)

// learnedQuirk is one (library, compute, model architecture) triple this
// machine has seen misbehave.
type learnedQuirk struct {
	Library string `json:"library"`

	// Compute and Arch are exact, not patterns.
	Compute string `json:"compute"`

	Arch string `json:"arch"`

	Cause learnedCause `json:"cause"`

	Evidence string `json:"evidence,omitempty"`

	Model string `json:"model,omitempty"`
	PCIID string `json:"pci_id,omitempty"`

	// MESFirmware is the GPU's MES firmware version when the quirk was learned.
	// When the GPU later reports another version the quirk is dropped, so the
	// library is tried again once.
	MESFirmware string `json:"mes_fw_version,omitempty"`

	LearnedAt time.Time `json:"learned_at"`
}

func (q learnedQuirk) rule() discover.QuirkRule {
	reason := fmt.Sprintf("learned on this machine on %s", q.LearnedAt.UTC().Format(time.DateOnly))
	if q.MESFirmware != "" {
		reason += " with MES firmware " + q.MESFirmware
	}
	reason += fmt.Sprintf(" (%s", q.Cause)
	if q.Evidence != "" {
		reason += ": " + q.Evidence
	}
	reason += "); clear with " + envconfig.BackendQuirksResetEnv + "=1"
	return discover.QuirkRule{
		Library:        q.Library,
		ComputePattern: q.Compute,
		ArchPatterns:   []string{q.Arch},
		Action:         discover.QuirkUseOtherLibrary,
		Reason:         reason,
		Source:         discover.QuirkSourceLearned,
		MESFirmware:    q.MESFirmware,
	}
}

// normalize makes the triple canonical and checks that it is a valid
// OLLAMA_BACKEND_DENYLIST entry, so what is learned can be written by hand.
func (q learnedQuirk) normalize() (learnedQuirk, error) {
	lib, ok := envconfig.CanonicalLibraryName(q.Library)
	if !ok {
		return learnedQuirk{}, fmt.Errorf("library %q: accepted: ROCm, CUDA, Vulkan", envconfig.Shorten(q.Library))
	}
	q.Library = lib
	q.Compute = strings.ToLower(q.Compute)
	q.Arch = strings.ToLower(q.Arch)
	for _, v := range []struct{ what, s string }{{"compute", q.Compute}, {"arch", q.Arch}} {
		if v.s == "" {
			return learnedQuirk{}, fmt.Errorf("empty %s", v.what)
		}
		if strings.ContainsAny(v.s, "*?[]^") {
			return learnedQuirk{}, fmt.Errorf("%s %q: a learned %s is exact, not a pattern", v.what, envconfig.Shorten(v.s), v.what)
		}
		if i := strings.IndexFunc(v.s, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._-+", r))
		}); i >= 0 {
			return learnedQuirk{}, fmt.Errorf("%s %q: only letters, digits, '.', '_', '-' and '+' are accepted", v.what, envconfig.Shorten(v.s))
		}
	}
	entry := q.rule().String()
	d, err := envconfig.ParseBackendDenylist(entry)
	if err != nil {
		return learnedQuirk{}, fmt.Errorf("%q is not a denylist entry: %w", envconfig.Shorten(entry), err)
	}
	if len(d.Entries) != 1 || d.Entries[0].Compute != q.Compute || len(d.Entries[0].Archs) != 1 || d.Entries[0].Archs[0] != q.Arch {
		return learnedQuirk{}, fmt.Errorf("%q is not a single denylist entry", envconfig.Shorten(entry))
	}
	switch q.Cause {
	case causeStuckBusy, causeCrashes, causeLoadDeath:
	default:
		return learnedQuirk{}, fmt.Errorf("cause %q: accepted: %s, %s, %s", envconfig.Shorten(string(q.Cause)), causeStuckBusy, causeCrashes, causeLoadDeath)
	}
	return q, nil
}

func (q learnedQuirk) key() string { return q.Library + ":" + q.Compute + ":" + q.Arch }

// learnedStuck is a GPU found stuck, kept across server restarts of the same
// boot: it stays stuck until reboot, so a later model must not be blamed.
type learnedStuck struct {
	BootID  string  `json:"boot_id"`
	Finding finding `json:"finding"`
}

type learnedQuirksState struct {
	Version   int            `json:"version"`
	Quirks    []learnedQuirk `json:"quirks"`
	StuckGPUs []learnedStuck `json:"stuck_gpus,omitempty"`
}

// decodeLearnedQuirks decodes a state file. A structural problem is an error
// and the whole file is ignored; invalid entries are left out, each reported
// in problems.
func decodeLearnedQuirks(data []byte) (state learnedQuirksState, problems []error, err error) {
	if len(data) > learnedQuirksMaxSize {
		return learnedQuirksState{}, nil, fmt.Errorf("%d bytes, larger than the %d accepted", len(data), learnedQuirksMaxSize)
	}
	// Read the version first, so that a newer format with other field types is
	// reported as newer, not corrupt.
	var head struct {
		Version *json.RawMessage `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return learnedQuirksState{}, nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if head.Version == nil {
		return learnedQuirksState{}, nil, errors.New("no \"version\" field")
	}
	var version int
	if err := json.Unmarshal(*head.Version, &version); err != nil {
		return learnedQuirksState{}, nil, fmt.Errorf("version %s: want a whole number", envconfig.Shorten(string(*head.Version)))
	}
	if version != learnedQuirksVersion {
		return learnedQuirksState{}, nil, &learnedVersionError{version}
	}

	dec := json.NewDecoder(bytes.NewReader(data))
	var raw learnedQuirksState
	if err := dec.Decode(&raw); err != nil {
		return learnedQuirksState{}, nil, fmt.Errorf("version %d content: %w", version, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return learnedQuirksState{}, nil, errors.New("data after the JSON object")
	}

	state.Version = version
	seen := make(map[string]bool)
	for i, q := range raw.Quirks {
		n, err := q.normalize()
		if err != nil {
			problems = append(problems, fmt.Errorf("quirks[%d]: %w", i, err))
			continue
		}
		if seen[n.key()] {
			continue
		}
		seen[n.key()] = true
		state.Quirks = append(state.Quirks, n)
	}
	seenGPU := make(map[string]bool)
	for i, s := range raw.StuckGPUs {
		id, err := normalizePCIID(s.Finding.PCIID)
		if err != nil {
			problems = append(problems, fmt.Errorf("stuck_gpus[%d]: %w", i, err))
			continue
		}
		if s.BootID == "" {
			problems = append(problems, fmt.Errorf("stuck_gpus[%d]: empty boot_id", i))
			continue
		}
		if seenGPU[id] {
			continue
		}
		seenGPU[id] = true
		s.Finding.PCIID = id
		state.StuckGPUs = append(state.StuckGPUs, s)
	}
	return state, problems, nil
}

// learnedVersionError is a state file of a newer format; it is not overwritten.
type learnedVersionError struct{ version int }

func (e *learnedVersionError) Error() string {
	return fmt.Sprintf("version %d, this server reads version %d (written by a newer Ollama?); it is ignored and left as it is", e.version, learnedQuirksVersion)
}

func encodeLearnedQuirks(state learnedQuirksState) ([]byte, error) {
	state.Version = learnedQuirksVersion
	if state.Quirks == nil {
		state.Quirks = []learnedQuirk{}
	}
	data, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// learnedQuirks is the learned-quirks state file of one server. It is safe
// for concurrent use; a nil *learnedQuirks holds and records nothing. The
// file is re-read whenever it changed on disk, so deleting it takes effect
// at the next model load. Problems with it are logged, never fatal.
type learnedQuirks struct {
	file   string
	logger *slog.Logger
	now    func() time.Time

	writeHook func(w io.Writer, data []byte) error

	mu    sync.Mutex
	state learnedQuirksState
	// stamp is the file as last read or written.
	stamp learnedStamp
	// keep is set while the file holds an unknown version: it is neither used
	// nor overwritten.
	keep bool
}

type learnedStamp struct {
	exists  bool
	regular bool
	size    int64
	modTime time.Time
	statErr string
}

// openLearnedQuirks reads the learned-quirks file at path. A file that is
// unreadable, corrupt or of an unknown version is logged once and treated as
// empty; it never fails.
func openLearnedQuirks(path string, logger *slog.Logger) *learnedQuirks {
	if logger == nil {
		logger = slog.Default()
	}
	s := &learnedQuirks{file: path, logger: logger, now: time.Now}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reloadLocked()
	return s
}

func (s *learnedQuirks) path() string {
	if s == nil {
		return ""
	}
	return s.file
}

func (s *learnedQuirks) statLocked() (learnedStamp, error) {
	fi, err := os.Stat(s.file)
	if errors.Is(err, fs.ErrNotExist) {
		return learnedStamp{}, nil
	}
	if err != nil {
		return learnedStamp{statErr: err.Error()}, err
	}
	return learnedStamp{exists: true, regular: fi.Mode().IsRegular(), size: fi.Size(), modTime: fi.ModTime()}, nil
}

// refreshLocked reloads the file if it changed on disk; a file that stays
// broken is reported once.
func (s *learnedQuirks) refreshLocked() {
	if st, _ := s.statLocked(); st == s.stamp {
		return
	}
	s.reloadLocked()
}

func (s *learnedQuirks) reloadLocked() {
	s.state, s.keep = learnedQuirksState{}, false
	st, err := s.statLocked()
	s.stamp = st
	if err != nil {
		s.warn(err)
		return
	}
	if !st.exists {
		return
	}
	if !st.regular {
		s.warn(errors.New("not a regular file"))
		return
	}
	f, err := os.Open(s.file)
	if err != nil {
		s.warn(err)
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, learnedQuirksMaxSize+1))
	if err != nil {
		s.warn(err)
		return
	}
	state, problems, err := decodeLearnedQuirks(data)
	if err != nil {
		var ve *learnedVersionError
		s.keep = errors.As(err, &ve)
		s.warn(err)
		return
	}
	if len(problems) > 0 {
		s.warn(fmt.Errorf("entries left out: %w", errors.Join(problems...)))
	}
	s.state = state
}

func (s *learnedQuirks) warn(err error) {
	s.logger.Warn("ignoring learned backend quirks file", "file", s.file, "error", err,
		"reset", "remove the file or set "+envconfig.BackendQuirksResetEnv+"=1 and restart")
}

func (s *learnedQuirks) all() []learnedQuirk {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshLocked()
	return slices.Clone(s.state.Quirks)
}

// rules returns the learned quirks as rules denying the library; it re-reads
// the file when it changed on disk.
func (s *learnedQuirks) rules() []discover.QuirkRule {
	var rules []discover.QuirkRule
	for _, q := range s.all() {
		rules = append(rules, q.rule())
	}
	return rules
}

// record adds a quirk and writes the file; added is false when the triple is
// already recorded.
func (s *learnedQuirks) record(q learnedQuirk) (added bool, err error) {
	if s == nil {
		return false, nil
	}
	q, err = q.normalize()
	if err != nil {
		return false, fmt.Errorf("learned quirk: %w", err)
	}
	if q.LearnedAt.IsZero() {
		q.LearnedAt = s.now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshLocked()
	for _, have := range s.state.Quirks {
		if have.key() == q.key() {
			return false, nil
		}
	}
	next := s.state
	next.Quirks = append(slices.Clone(s.state.Quirks), q)
	if over := len(next.Quirks) - learnedQuirksMaxEntries; over > 0 {
		next.Quirks = next.Quirks[over:]
	}
	if err := s.writeLocked(next); err != nil {
		return false, err
	}
	return true, nil
}

func (s *learnedQuirks) hasStuck() bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshLocked()
	return len(s.state.StuckGPUs) > 0
}

func (s *learnedQuirks) stuckGPUs(bootID string) []finding {
	if s == nil || bootID == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshLocked()
	var out []finding
	for _, st := range s.state.StuckGPUs {
		if st.BootID == bootID {
			out = append(out, st.Finding)
		}
	}
	return out
}

// setStuck records (f set) or clears (f nil) the stuck state of a GPU for
// the boot bootID, dropping records of other boots.
func (s *learnedQuirks) setStuck(bootID, pciID string, f *finding) error {
	if s == nil || bootID == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshLocked()
	next := s.state
	next.StuckGPUs = nil
	changed := false
	for _, st := range s.state.StuckGPUs {
		if st.BootID != bootID || st.Finding.PCIID == pciID {
			changed = true
			continue
		}
		next.StuckGPUs = append(next.StuckGPUs, st)
	}
	if f != nil {
		next.StuckGPUs = append(next.StuckGPUs, learnedStuck{BootID: bootID, Finding: *f})
		changed = true
	}
	if !changed {
		return nil
	}
	return s.writeLocked(next)
}

func (s *learnedQuirks) writeLocked(next learnedQuirksState) error {
	if s.keep {
		return fmt.Errorf("%s holds a format this server does not know; not overwriting it (remove it, or set %s=1, to start over)", s.file, envconfig.BackendQuirksResetEnv)
	}
	data, err := encodeLearnedQuirks(next)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", s.file, err)
	}
	write := s.writeHook
	if write == nil {
		write = func(w io.Writer, data []byte) error { _, err := w.Write(data); return err }
	}
	if err := writeFileAtomic(s.file, data, write); err != nil {
		return err
	}
	s.state = next
	s.state.Version = learnedQuirksVersion
	s.stamp, _ = s.statLocked()
	return nil
}

func (s *learnedQuirks) drop(key string) (bool, error) {
	if s == nil {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshLocked()
	next := s.state
	next.Quirks = slices.DeleteFunc(slices.Clone(s.state.Quirks), func(q learnedQuirk) bool { return q.key() == key })
	if len(next.Quirks) == len(s.state.Quirks) {
		return false, nil
	}
	return true, s.writeLocked(next)
}

// forget removes the file whatever its content and returns how many quirks
// it held (envconfig.BackendQuirksResetEnv).
func (s *learnedQuirks) forget() (int, error) {
	if s == nil {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshLocked()
	n := len(s.state.Quirks)
	if err := os.Remove(s.file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("forgetting learned backend quirks: %w", err)
	}
	s.state, s.keep, s.stamp = learnedQuirksState{}, false, learnedStamp{}
	s.logger.Info("forgot learned backend quirks", "file", s.file, "quirks", n)
	return n, nil
}

// writeFileAtomic replaces path with data through a synced temporary file
// and a rename, so readers never see a part.
func writeFileAtomic(path string, data []byte, write func(w io.Writer, data []byte) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := write(f, data); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
