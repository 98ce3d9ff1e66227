from cttop.cli import main

main()
