"""Published reference figures the report shows beside a user's rows."""
