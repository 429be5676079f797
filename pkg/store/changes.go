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

// changesID is the settings document counting the writes a controller must
// act on: every class created, changed (spec or desired phase) or deleted.
// The controller reads it every tenth of a second, one small document,
// where listing every class's version each time would cost a scan; a change
// in it starts a full poll at once. Status writes, which the controller
// makes itself, do not count.
const changesID = "changes"

// bumpChanges counts a class write. A failed count only delays the
// controller to its next full poll, so it is logged, not returned.
func (s *Store) bumpChanges(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	_, err := s.db.Collection(settingsCollection).UpdateOne(cctx, bson.D{{Key: "_id", Value: changesID}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: int64(1)}}}}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		s.log.Warn("count a class change (the controller notices it at its next full poll)", zap.Error(err))
	}
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
