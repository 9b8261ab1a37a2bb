// Importing this module registers every remote kind with the registry (file:// registers itself).
// Front ends (CLI, engine service) import it once; the engine's operations only use openBackend().
import './sftpBackend';
import './s3Backend';
import './rcloneBackend';
