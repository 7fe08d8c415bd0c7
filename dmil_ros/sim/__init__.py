"""dmil_ros.sim."""
