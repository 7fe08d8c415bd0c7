"""dmil_ros.audit."""
