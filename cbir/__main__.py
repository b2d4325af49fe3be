from cbir.cli import main

main()
