package httpapi

import (
	"errors"
	"io"
	"net/http"

	"github.com/meridian-db/meridian/netsim"
)

// Error codes of the emulated-network control.
const (
	CodeEmulationOff = "emulation_off" // the node does not emulate its network (started without --latency)
	CodeBadFault     = "bad_fault"     // a fault the emulated network cannot apply
)

// netsimState answers GET /debug/netsim: the emulated network's shape.
func (a *api) netsimState(w http.ResponseWriter, r *http.Request) error {
	nw := a.n.Network()
	if !nw.Emulated() {
		return errorf(CodeEmulationOff, "this node does not emulate its network; start it with --latency to change it at run time")
	}
	writeJSON(w, http.StatusOK, nw.State())
	return nil
}

// netsimFault answers POST /debug/netsim: one fault (see netsim.Fault)
// applied to what this process sends. A partition between processes takes
// the same fault posted to each of them. It is refused when the node does
// not emulate its network: a production node's network is never shaped.
func (a *api) netsimFault(w http.ResponseWriter, r *http.Request) error {
	nw := a.n.Network()
	if !nw.Emulated() {
		return errorf(CodeEmulationOff, "this node does not emulate its network; start it with --latency to change it at run time")
	}
	if err := requireJSON(r); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxAdminBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return errorf(CodeBodyTooLarge, "body over %d bytes", mb.Limit)
		}
		return errorf(CodeBadJSON, "reading the body: %v", err)
	}
	f, err := netsim.ParseFault(body)
	if err == nil {
		err = nw.Apply(f)
	}
	if err != nil {
		return errorf(CodeBadFault, "%v", err)
	}
	a.log.Warn("emulated network changed", "fault", f.Op, "state", nw.State())
	writeJSON(w, http.StatusOK, nw.State())
	return nil
}
