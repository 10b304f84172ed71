package server

import (
	"encoding/json"
	"net/http"
	"path/filepath"

	"github.com/spoolmq/spool/internal/errs"
)

// backupHandler serves POST /spool/admin/backup: {"dir": "/abs/path"}
// writes a consistent copy of the data directory into that directory of
// the server's machine (broker.Backup) and answers what it wrote
// (docs/api.md, "Backup"; docs/operations.md, "Backup and restore").
func (s *Server) backupHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Dir string `json:"dir"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeAdminError(w, errs.New(errs.InvalidArgument, "request body: %v", err))
			return
		}
		if !filepath.IsAbs(req.Dir) {
			writeAdminError(w, errs.New(errs.InvalidArgument, "dir must be an absolute path on the server's machine, got %q", req.Dir))
			return
		}
		dir := filepath.Clean(req.Dir)
		if rel, err := filepath.Rel(s.cfg.DataDir, dir); err == nil && filepath.IsLocal(rel) || dir == s.cfg.DataDir {
			writeAdminError(w, errs.New(errs.InvalidArgument, "dir %s is inside the data directory %s", dir, s.cfg.DataDir))
			return
		}
		st, err := s.broker.Backup(dir)
		if err != nil {
			s.logger.Warn("backup failed", "dir", dir, "err", err)
			writeAdminError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"dir": dir, "topics": st.Topics, "partitions": st.Partitions, "segments": st.Segments,
			"linked_segments": st.Linked, "copied_bytes": st.CopiedBytes, "took_ms": st.Took.Milliseconds(),
		})
	})
}

// writeAdminError answers {"code","message"} with the error's HTTP status.
func writeAdminError(w http.ResponseWriter, err error) {
	code := errs.CodeOf(err)
	status := http.StatusInternalServerError
	switch code {
	case errs.InvalidArgument:
		status = http.StatusBadRequest
	case errs.FailedPrecondition:
		status = http.StatusConflict
	case errs.UnsupportedFeature:
		status = http.StatusNotImplemented
	case errs.Unavailable:
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": string(code), "message": err.Error()})
}
