from canary.cli.entry import main

main()
