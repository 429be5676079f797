package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// leaseCollection holds one document per lease: who holds it and until when.
const leaseCollection = "leases"

// TryAcquire takes or renews the lease name for holder for ttl, and reports
// whether holder now has it. The expiry is in the update filter, not a TTL
// index (FerretDB has none): a lease is free once its expiresAt has passed,
// by the clock of whoever writes next.
func (s *Store) TryAcquire(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	coll := s.coll.Database().Collection(leaseCollection)
	t := now()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := coll.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: name}, {Key: "$or", Value: bson.A{
			bson.D{{Key: "holder", Value: holder}},
			bson.D{{Key: "expiresAt", Value: bson.D{{Key: "$lte", Value: t}}}},
		}}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "holder", Value: holder}, {Key: "expiresAt", Value: t.Add(ttl)}, {Key: "renewedAt", Value: t},
		}}})
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	if res.MatchedCount == 1 {
		return true, nil
	}
	_, err = coll.InsertOne(ctx, bson.D{
		{Key: "_id", Value: name}, {Key: "holder", Value: holder},
		{Key: "expiresAt", Value: t.Add(ttl)}, {Key: "renewedAt", Value: t},
	})
	if mongo.IsDuplicateKeyError(err) {
		return false, nil // held by someone else, and not expired
	}
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	return true, nil
}

// Release gives the lease up at once, if holder has it, so that another
// controller need not wait for it to expire.
func (s *Store) Release(ctx context.Context, name, holder string) error {
	coll := s.coll.Database().Collection(leaseCollection)
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: name}, {Key: "holder", Value: holder}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expiresAt", Value: time.Unix(0, 0).UTC()}}}})
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

// LeaseHolder returns who holds the lease and until when ("" if nobody ever did).
func (s *Store) LeaseHolder(ctx context.Context, name string) (string, time.Time, error) {
	coll := s.coll.Database().Collection(leaseCollection)
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var doc struct {
		Holder    string    `bson:"holder"`
		ExpiresAt time.Time `bson:"expiresAt"`
	}
	err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: name}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("lease %s: %w", name, err)
	}
	return doc.Holder, doc.ExpiresAt, nil
}
