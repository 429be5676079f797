package store

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// WatchChanges streams the ids of classes as they change, through a MongoDB
// change stream. Servers without change streams (FerretDB, a standalone
// mongod) refuse at once with an error; callers then poll. The channel is
// closed when the stream ends, and the caller should fall back to polling
// and, since changes may have been missed, look at everything once.
func (s *Store) WatchChanges(ctx context.Context) (<-chan string, error) {
	cs, err := s.coll.Watch(ctx, mongo.Pipeline{}, options.ChangeStream().SetFullDocument(options.Default))
	if err != nil {
		return nil, fmt.Errorf("change stream: %w", err)
	}
	out := make(chan string)
	go func() {
		defer close(out)
		defer cs.Close(context.Background())
		for cs.Next(ctx) {
			var ev struct {
				DocumentKey struct {
					ID string `bson:"_id"`
				} `bson:"documentKey"`
			}
			if err := bson.Unmarshal(cs.Current, &ev); err != nil || ev.DocumentKey.ID == "" {
				continue
			}
			select {
			case out <- ev.DocumentKey.ID:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
