from cdb_ops.cli import main

main()
