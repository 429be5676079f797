package reconcile

import (
	"context"
	"maps"

	"github.com/docker/docker/api/types/volume"
	"github.com/homeroom/homeroom/pkg/api"
)

// volumeSizer is the part of Docker that measures volumes.
type volumeSizer interface {
	VolumeSizes(ctx context.Context) ([]*volume.Volume, error)
}

// MeasureWorkspaces measures every student's work volumes at once and keeps
// the sizes for the passes that follow, which report them and stop a
// sandbox past its template's workspaceMiB. Docker's local volumes on
// overlay2 have no size limit, so measuring is what the storage allows; the
// daemon walks every volume to answer, so it runs on the resync, not on
// every pass. It returns the classes whose sizes changed.
func (r *Reconciler) MeasureWorkspaces(ctx context.Context) ([]string, error) {
	vs, err := r.docker.VolumeSizes(ctx)
	if err != nil {
		return nil, err
	}
	sizes := map[string]map[string]int64{}
	for _, v := range vs {
		class, student := v.Labels[api.LabelClass], v.Labels[api.LabelStudent]
		if class == "" || student == "" || v.Labels[api.LabelCollectPath] == "" || v.UsageData == nil || v.UsageData.Size < 0 {
			continue
		}
		if sizes[class] == nil {
			sizes[class] = map[string]int64{}
		}
		sizes[class][student] += v.UsageData.Size
	}
	r.wsMu.Lock()
	defer r.wsMu.Unlock()
	var changed []string
	for class, m := range sizes {
		if !maps.Equal(m, r.workspaces[class]) {
			changed = append(changed, class)
		}
		for student, b := range m {
			r.metrics.workspaceBytes.WithLabelValues(class, student).Set(float64(b))
		}
	}
	for class, m := range r.workspaces {
		if _, ok := sizes[class]; !ok {
			changed = append(changed, class)
		}
		for student := range m {
			if _, ok := sizes[class][student]; !ok {
				r.metrics.workspaceBytes.DeleteLabelValues(class, student)
			}
		}
	}
	r.workspaces = sizes
	return changed, nil
}

// workspacesOf is the last measurement of a class's students, or nil
// before the first; a class measured without volumes has an empty map.
func (r *Reconciler) workspacesOf(classID string) map[string]int64 {
	r.wsMu.Lock()
	defer r.wsMu.Unlock()
	if r.workspaces == nil {
		return nil
	}
	m := maps.Clone(r.workspaces[classID])
	if m == nil {
		m = map[string]int64{}
	}
	return m
}
