"""dmil_ros.train."""
