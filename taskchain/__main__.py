from taskchain.cli import main

main()
