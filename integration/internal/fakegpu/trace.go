package fakegpu

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// TraceEvent is one line of a fake library trace file (set FAKEGPU_TRACE or
// <PREFIX>TRACE to a path). Every line is "fakegpu event=E pid=N ppid=N
// prefix=P library=L so=PATH [more key=value]".
type TraceEvent struct {
	Event   string
	PID     int
	PPID    int
	Prefix  string
	Library string
	SO      string
	Fields  map[string]string
}

// ReadTrace parses a trace file; a missing file yields no events.
func ReadTrace(path string) ([]TraceEvent, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var evs []TraceEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "fakegpu ")
		if !ok {
			continue
		}
		ev := TraceEvent{Fields: map[string]string{}}
		for _, f := range strings.Fields(rest) {
			k, v, _ := strings.Cut(f, "=")
			ev.Fields[k] = v
		}
		ev.Event = ev.Fields["event"]
		ev.PID, _ = strconv.Atoi(ev.Fields["pid"])
		ev.PPID, _ = strconv.Atoi(ev.Fields["ppid"])
		ev.Prefix = ev.Fields["prefix"]
		ev.Library = ev.Fields["library"]
		ev.SO = ev.Fields["so"]
		evs = append(evs, ev)
	}
	return evs, sc.Err()
}

// Filter returns the events named event (all if event is "").
func Filter(evs []TraceEvent, event string) []TraceEvent {
	var out []TraceEvent
	for _, e := range evs {
		if event == "" || e.Event == event {
			out = append(out, e)
		}
	}
	return out
}
