package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// orphanCollection holds one document per class id that is gone from the
// store while Docker still holds labelled resources of it: {_id: classId,
// since}. The controller's grace period before reaping counts from since,
// so it survives controller restarts.
const orphanCollection = "orphans"

// OrphanSince records that class id was seen orphaned at t, unless a
// sighting is already recorded, and returns the first one: a later t never
// moves it. The document is removed by ForgetOrphan.
func (s *Store) OrphanSince(ctx context.Context, id string, t time.Time) (time.Time, error) {
	coll := s.db.Collection(orphanCollection)
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var doc struct {
		Since time.Time `bson:"since"`
	}
	// $setOnInsert: only the write that creates the document sets since.
	update := bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: "since", Value: t.UTC().Truncate(time.Millisecond)}}}}
	opts := options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)
	for attempt := 0; ; attempt++ {
		err := coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: id}}, update, opts).Decode(&doc)
		if err == nil {
			break
		}
		// Two upserts of a new id can race; the loser finds the winner's
		// document on the next attempt.
		if !mongo.IsDuplicateKeyError(err) || attempt >= 2 {
			return time.Time{}, fmt.Errorf("orphan %s: %w", id, err)
		}
	}
	if doc.Since.IsZero() {
		return time.Time{}, fmt.Errorf("orphan %s: no first sighting recorded", id)
	}
	return doc.Since.UTC(), nil
}

// ForgetOrphan removes the sighting of class id, if any: its resources were
// reaped, or the class is back in the store.
func (s *Store) ForgetOrphan(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := s.db.Collection(orphanCollection).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("forget orphan %s: %w", id, err)
	}
	return nil
}
