package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/homeroom/homeroom/pkg/api"
)

// gradingsCollection holds one document per graded run (api.Grading).
// Every query on it is by _id, the one filter the embedded store answers
// without reading the whole collection: the list of gradings with work
// left is a settings document of its own (openGradingsID), not a query.
const (
	gradingsCollection = "gradings"
	openGradingsID     = "open-gradings"
)

// OpenGrading records that a run is to be graded, attempt 1 for its
// collected students, unless it already is. It is added to the open list
// first: a crash between the two leaves an id the controller finds has no
// grading and drops, never a grading nobody works on.
func (s *Store) OpenGrading(ctx context.Context, g api.Grading) error {
	g.ID = api.GradingID(g.ClassID, g.RunID)
	if g.Attempt == 0 {
		g.Attempt = 1
	}
	if g.Results == nil {
		g.Results = map[string]api.GradingStudent{}
	}
	if err := s.markOpen(ctx, g.ID); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := s.db.Collection(gradingsCollection).InsertOne(cctx, g); err != nil && !isDuplicateKey(err) {
		return fmt.Errorf("open grading %s: %w", g.ID, err)
	}
	// The controller reads the change count ten times a second: a count
	// that moves has it look at the open gradings at once.
	s.bumpChanges(ctx)
	return nil
}

// Regrade asks for the next attempt of a run's grading, or for the first
// when the run was never graded (its template had no grader then): fresh
// describes that first attempt. It returns the grading as now stored, and
// records run.grade in the audit trail by the actor of ctx.
func (s *Store) Regrade(ctx context.Context, fresh api.Grading, by string) (*api.Grading, error) {
	g, err := s.regrade(ctx, fresh, by)
	if err != nil {
		return nil, err
	}
	s.record(ctx, api.AuditEntry{Action: api.AuditRunGrade, Target: fmt.Sprintf("class/%s/run/%s/attempt/%d", g.ClassID, g.RunID, g.Attempt),
		ClassID: g.ClassID, Subjects: []string{g.Subject}, To: &api.AuditState{Students: g.Students}})
	return g, nil
}

func (s *Store) regrade(ctx context.Context, fresh api.Grading, by string) (*api.Grading, error) {
	id := api.GradingID(fresh.ClassID, fresh.RunID)
	if err := s.markOpen(ctx, id); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var g api.Grading
	err := s.db.Collection(gradingsCollection).FindOneAndUpdate(cctx, bson.D{{Key: "_id", Value: id}},
		bson.D{
			{Key: "$inc", Value: bson.D{{Key: "attempt", Value: 1}}},
			{Key: "$set", Value: bson.D{{Key: "requestedAt", Value: now()}, {Key: "requestedBy", Value: by}}},
		},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&g)
	if err == nil {
		s.bumpChanges(ctx)
		return &g, nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("regrade %s: %w", id, err)
	}
	fresh.RequestedAt, fresh.RequestedBy = now(), by
	if err := s.OpenGrading(ctx, fresh); err != nil {
		return nil, err
	}
	return s.GetGrading(ctx, fresh.ClassID, fresh.RunID)
}

// GetGrading returns a run's grading, or ErrNotFound.
func (s *Store) GetGrading(ctx context.Context, classID, runID string) (*api.Grading, error) {
	return s.GradingByID(ctx, api.GradingID(classID, runID))
}

// GradingByID is GetGrading by the grading's id.
func (s *Store) GradingByID(ctx context.Context, id string) (*api.Grading, error) {
	var g api.Grading
	if err := s.getDoc(ctx, gradingsCollection, id, &g); err != nil {
		return nil, err
	}
	if g.Results == nil {
		g.Results = map[string]api.GradingStudent{}
	}
	return &g, nil
}

// RecordGrade stores one student's outcome. It never lowers an outcome's
// attempt: a late result of an attempt a regrade has replaced is dropped.
func (s *Store) RecordGrade(ctx context.Context, id, student string, r api.GradingStudent) error {
	if err := api.ValidateID("student id", student); err != nil {
		return err
	}
	cur, err := s.GradingByID(ctx, id)
	if err != nil {
		return err
	}
	if cur.Results[student].Attempt > r.Attempt {
		return nil
	}
	if r.GradedAt.IsZero() {
		r.GradedAt = now()
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	// One field of its own: the student id is a field name, which its
	// validation (no dots, no $) keeps safe.
	if _, err := s.db.Collection(gradingsCollection).UpdateOne(cctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "results." + student, Value: r}}}}); err != nil {
		return fmt.Errorf("record grade of %s in %s: %w", student, id, err)
	}
	return nil
}

// OpenGradings lists the gradings that may have work left.
func (s *Store) OpenGradings(ctx context.Context) ([]string, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var doc struct {
		IDs []string `bson:"ids"`
	}
	err := s.db.Collection(settingsCollection).FindOne(cctx, bson.D{{Key: "_id", Value: openGradingsID}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list open gradings: %w", err)
	}
	return doc.IDs, nil
}

// CloseGrading takes a grading off the open list: every student has an
// outcome of its attempt, or the grading is gone.
func (s *Store) CloseGrading(ctx context.Context, id string) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := s.db.Collection(settingsCollection).UpdateOne(cctx, bson.D{{Key: "_id", Value: openGradingsID}},
		bson.D{{Key: "$pull", Value: bson.D{{Key: "ids", Value: id}}}}); err != nil {
		return fmt.Errorf("close grading %s: %w", id, err)
	}
	return nil
}

func (s *Store) markOpen(ctx context.Context, id string) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := s.db.Collection(settingsCollection).UpdateOne(cctx, bson.D{{Key: "_id", Value: openGradingsID}},
		bson.D{{Key: "$addToSet", Value: bson.D{{Key: "ids", Value: id}}}}, options.UpdateOne().SetUpsert(true)); err != nil {
		return fmt.Errorf("open grading %s: %w", id, err)
	}
	return nil
}
