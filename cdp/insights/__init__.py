"""Small aggregates kept up to date while events are processed, so dashboard pages never scan the
events table: events per source per hour and per minute, the observed schema, and monthly tracked users."""
