"""Fan method x epsilon/m x seed out over Ray Tune, locally or on a `ray up` cluster."""
