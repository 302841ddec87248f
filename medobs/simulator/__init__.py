"""The platform simulator: the metric shapes and real traffic of the platform, without the platform."""
