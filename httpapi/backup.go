package httpapi

import (
	"errors"
	"net/http"

	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

// Backups and restores (node/backup.go, node/restore.go):
//
//	POST   /v1/backups               start a backup (node.BackupRequest); 202 with the job
//	GET    /v1/backups/jobs/{id}     the job: progress, then the manifest or the error
//	POST   /v1/restores              start a restore (node.RestoreRequest); 202 with its status
//	GET    /v1/restores/{id}         its status
//	DELETE /v1/restores/{id}         cancel it: its hidden keyspace is removed
//	GET    /v1/backup/schedule       the cluster's backup schedule (404 if none)
//	PUT    /v1/backup/schedule       set it (metadata.BackupSchedule)
//	DELETE /v1/backup/schedule       remove it
//	GET    /v1/backup/archives       the log archives this node ships, with their lag
//
// Requests carry the target's credentials and encryption key when the
// node's own environment should not be used: they are never logged nor
// echoed back (the audit log shows request bodies with them hidden:
// redactJSON). Every route here needs the cluster admin permission
// (routePermissions), and every request to one is audited.

func (a *api) startBackup(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	var req node.BackupRequest
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, a.cfg.MaxAdminBodyBytes), &req); err != nil {
		return err
	}
	job, err := a.n.StartBackup(req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, job)
	return nil
}

func (a *api) backupJob(w http.ResponseWriter, r *http.Request) error {
	job, err := a.n.BackupJobStatus(r.PathValue("id"))
	if errors.Is(err, node.ErrNoBackupJob) {
		return errorf(CodeNotFound, "%v", err)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, job)
	return nil
}

func (a *api) startRestore(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	var req node.RestoreRequest
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, a.cfg.MaxAdminBodyBytes), &req); err != nil {
		return err
	}
	st, err := a.n.StartRestore(req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, st)
	return nil
}

func (a *api) restoreStatus(w http.ResponseWriter, r *http.Request) error {
	st, err := a.n.RestoreProgress(r.PathValue("id"))
	if errors.Is(err, node.ErrNoRestore) {
		return errorf(CodeNotFound, "%v", err)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (a *api) cancelRestore(w http.ResponseWriter, r *http.Request) error {
	err := a.n.CancelRestore(r.Context(), r.PathValue("id"))
	if errors.Is(err, node.ErrNoRestore) {
		return errorf(CodeNotFound, "%v", err)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) getSchedule(w http.ResponseWriter, r *http.Request) error {
	s := a.n.Metadata().Backup
	if s == nil {
		return errorf(CodeNotFound, "no backup schedule")
	}
	writeJSON(w, http.StatusOK, s)
	return nil
}

func (a *api) putSchedule(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	var s metadata.BackupSchedule
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, a.cfg.MaxAdminBodyBytes), &s); err != nil {
		return err
	}
	if s.Target == "" {
		return errorf(CodeBadValue, "a schedule needs a target")
	}
	if err := a.n.SetBackupSchedule(r.Context(), &s); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.n.Metadata().Backup)
	return nil
}

func (a *api) deleteSchedule(w http.ResponseWriter, r *http.Request) error {
	if err := a.n.SetBackupSchedule(r.Context(), nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) archives(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, a.n.Archives())
	return nil
}
