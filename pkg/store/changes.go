package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/zap"
)

// changesID is the settings document counting class writes, in two
// fields. n counts the writes a controller must act on: every class
// created, changed (spec or desired phase) or deleted. The controller reads
// it every tenth of a second, one small document, where listing every
// class's version each time would cost a scan; a change in it starts a full
// poll at once. s counts status writes, which the controller makes itself:
// the apiserver's long polls read the two, and the classes' versions only
// when one moved.
const changesID = "changes"

// bumpChanges counts a class write. A failed count only delays the
// controller to its next full poll, so it is logged, not returned.
func (s *Store) bumpChanges(ctx context.Context) {
	if err := s.incChanges(ctx, "n"); err != nil {
		s.log.Warn("count a class change (the controller notices it at its next full poll)", zap.Error(err))
	}
}

// incChanges adds one to a field of the change-count document.
func (s *Store) incChanges(ctx context.Context, field string) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	_, err := s.db.Collection(settingsCollection).UpdateOne(cctx, bson.D{{Key: "_id", Value: changesID}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: field, Value: int64(1)}}}}, options.UpdateOne().SetUpsert(true))
	return err
}

// countStatusWrite has a status write counted soon after, without waiting.
func (s *Store) countStatusWrite() {
	s.countOnce.Do(func() { go s.countStatusWrites() })
	select {
	case s.statusWrites <- struct{}{}:
	default: // a count is pending already; it comes after this write
	}
}

func (s *Store) countStatusWrites() {
	for {
		select {
		case <-s.statusWrites:
			s.bumpStatusChanges()
		case <-s.done:
			return
		}
	}
}

// bumpStatusChanges counts status writes; a failed count only delays long
// polls to their next full look.
func (s *Store) bumpStatusChanges() {
	if err := s.incChanges(context.Background(), "s"); err != nil {
		s.log.Warn("count a status write (long polls notice it at their next full look)", zap.Error(err))
	}
}

// ChangeCounts are the counts of class writes (Changes) and of status
// writes so far.
type ChangeCounts struct{ Classes, Statuses int64 }

// AllChanges reads both counts of class writes in one small read.
func (s *Store) AllChanges(ctx context.Context) (ChangeCounts, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var doc struct {
		N int64 `bson:"n"`
		S int64 `bson:"s"`
	}
	err := s.db.Collection(settingsCollection).FindOne(cctx, bson.D{{Key: "_id", Value: changesID}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return ChangeCounts{}, nil
	}
	if err != nil {
		return ChangeCounts{}, fmt.Errorf("read the change counts: %w", err)
	}
	return ChangeCounts{Classes: doc.N, Statuses: doc.S}, nil
}

// Changes is the count of class writes so far (0 before the first).
func (s *Store) Changes(ctx context.Context) (int64, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var doc struct {
		N int64 `bson:"n"`
	}
	err := s.db.Collection(settingsCollection).FindOne(cctx, bson.D{{Key: "_id", Value: changesID}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the change count: %w", err)
	}
	return doc.N, nil
}
