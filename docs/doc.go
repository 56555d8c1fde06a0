// Package docs holds Meridian's design note, DESIGN.md, which describes
// the system as the code builds it. Comments elsewhere cite its sections
// ("docs/DESIGN.md 2.2"); the package's test checks that every cited
// section exists.
package docs
