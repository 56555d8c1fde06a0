package raftgroup

import "errors"

var (
	// ErrStopped is returned when the host has stopped (shut down or failed).
	ErrStopped = errors.New("raftgroup: host stopped")
	// ErrUnknownGroup is returned for a group this node does not host.
	ErrUnknownGroup = errors.New("raftgroup: group not hosted on this node")
	// ErrGroupExists is returned by AddGroup for a group already hosted.
	ErrGroupExists = errors.New("raftgroup: group already hosted on this node")
	// ErrNoLeader is returned when a request could not reach a leader before
	// its context ended: the group may have lost its quorum.
	ErrNoLeader = errors.New("raftgroup: no leader (the group may have lost its quorum)")
	// ErrTimeout is returned when a proposal was handed to raft but its
	// outcome was not known before the context ended: it may or may not
	// have been applied.
	ErrTimeout = errors.New("raftgroup: timed out, outcome unknown")
	// ErrNotLeader is returned by Propose on a replica that is not the
	// group's leader: nothing was proposed. Send the proposal to the leader.
	ErrNotLeader = errors.New("raftgroup: not the leader")
	// ErrDropped is returned when a proposal definitely did not and will
	// not take effect (raft refused it, or another entry was committed at
	// its log position); it is safe to retry.
	ErrDropped = errors.New("raftgroup: proposal dropped")
	// ErrRemoved is returned to waiters of a group removed from this node.
	ErrRemoved = errors.New("raftgroup: group removed from this node")
)
